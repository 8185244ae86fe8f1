-- Plan checks and outcome follow-ups with their durable due times, reminders and records.

ALTER TABLE tracked_cases
    ALTER COLUMN income_source_at_referral DROP NOT NULL,  -- unknown when ConsultationHeld came first
    ALTER COLUMN referred_at DROP NOT NULL,                -- unknown when CaseNotConsulted came first
    ADD COLUMN team_id      text,
    ADD COLUMN municipality text,
    ADD COLUMN status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    ADD COLUMN exit_reason  text,
    ADD COLUMN closed_at    timestamptz;

CREATE TABLE followups (
    followup_id           text PRIMARY KEY,          -- <case_ref>.<kind>
    case_ref              text NOT NULL REFERENCES tracked_cases,
    kind                  text NOT NULL CHECK (kind IN ('plan_check', 'six_months', 'twelve_months')),
    team_id               text NOT NULL,
    municipality          text NOT NULL,
    referring_party       text NOT NULL,
    responsible_party     text NOT NULL,
    consultation_held_on  date NOT NULL,
    due_on                date NOT NULL,
    -- pending: not yet due; due: reminded, not recorded; completed; cancelled (case closed)
    status                text NOT NULL DEFAULT 'pending'
                          CHECK (status IN ('pending', 'due', 'completed', 'cancelled')),
    -- when the scheduler acts next (due reminder, overdue reminder, escalation); NULL: never
    next_action_at        timestamptz,
    reminders_sent        int NOT NULL DEFAULT 0,    -- overdue reminders
    due_sent_at           timestamptz,
    escalated_at          timestamptz,
    revision              int NOT NULL DEFAULT 0,    -- of the latest record
    UNIQUE (case_ref, kind)
);
-- The scheduler reads only what is due: its cost follows the due rows, not the pending ones.
CREATE INDEX followups_next_action ON followups (next_action_at) WHERE next_action_at IS NOT NULL;
CREATE INDEX followups_party ON followups (responsible_party, status, due_on);

-- Every record of a follow-up; a correction is a new revision, the highest counts.
CREATE TABLE followup_records (
    followup_id     text NOT NULL REFERENCES followups,
    revision        int  NOT NULL,
    recorded_on     date NOT NULL,
    reached         boolean NOT NULL,
    income_source   text,
    readiness       text,
    plan_status     text,
    recorded_by     text NOT NULL,     -- the party
    recorded_by_user text NOT NULL,    -- the broker user or HTTP user
    channel         text NOT NULL CHECK (channel IN ('amqp', 'http')),
    recorded_at     timestamptz NOT NULL,
    PRIMARY KEY (followup_id, revision)
);

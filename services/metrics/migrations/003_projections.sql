-- Projections for the board's figures, built from the event log (live, and again by `rebuild`).
-- Keyed by the facts' own ids, so applying an event twice, or replaying the log, gives the same rows.

ALTER TABLE event_log ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;  -- the order received
CREATE UNIQUE INDEX event_log_seq ON event_log (seq);

CREATE TABLE team_facts (
    team_id       text PRIMARY KEY,
    municipality  text NOT NULL,
    team_name     text NOT NULL,
    revision      int  NOT NULL
);

-- One row per case: at referral, at consultation, at closure.
CREATE TABLE case_facts (
    case_ref                 text PRIMARY KEY,
    team_id                  text,
    municipality             text,
    referring_party          text,
    gender                   text,
    age_band                 text,
    income_at_referral       text,
    violence_question_asked  boolean,
    referred_at              timestamptz,
    referred_on              date,          -- Swedish date: decides the period of a referral
    consulted_on             date,
    meeting_id               text,
    individual_attended      boolean,
    not_consulted_reason     text,
    not_consulted_on         date,
    closed_on                date,
    exit_reason              text
);
CREATE INDEX case_facts_referred ON case_facts (referred_on);
CREATE INDEX case_facts_consulted ON case_facts (consulted_on);

CREATE TABLE action_facts (
    case_ref           text NOT NULL,
    position           int  NOT NULL,
    type               text NOT NULL,
    responsible_party  text NOT NULL,
    PRIMARY KEY (case_ref, position)
);

CREATE TABLE meeting_facts (
    meeting_id           text PRIMARY KEY,
    team_id              text NOT NULL,
    municipality         text NOT NULL,
    meeting_date         date NOT NULL,
    cancelled_reason     text,
    pre_meeting_held_on  date
);

CREATE TABLE postponement_facts (
    event_id       uuid PRIMARY KEY,
    case_ref       text NOT NULL,
    team_id        text NOT NULL,
    from_meeting_date date NOT NULL,
    reason         text NOT NULL
);

CREATE TABLE followup_facts (
    followup_id      text PRIMARY KEY,
    case_ref         text NOT NULL,
    kind             text NOT NULL,
    team_id          text NOT NULL,
    municipality     text NOT NULL,
    referring_party  text NOT NULL,
    due_on           date NOT NULL,
    cancelled        boolean NOT NULL DEFAULT false,
    revision         int NOT NULL DEFAULT 0,      -- of the latest record (0: none)
    recorded_on      date,
    reached          boolean,
    income_source    text,
    readiness        text,
    plan_status      text
);
CREATE INDEX followup_facts_due ON followup_facts (kind, due_on);

-- The walking skeleton's running count is replaced by case_facts.
DROP TABLE referrals_by_party;

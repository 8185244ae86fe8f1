-- Referral intake with a privacy vault, consent history, rejections and an access log.

ALTER TABLE referrals
    ADD COLUMN municipality text NOT NULL DEFAULT '',
    ADD COLUMN protected_identity boolean NOT NULL DEFAULT false,
    ADD COLUMN officer_id text NOT NULL DEFAULT '',
    ADD COLUMN closed_at timestamptz,
    ADD COLUMN exit_reason text;
-- One open case per person, found by pseudonym (never by decrypting).
CREATE UNIQUE INDEX referrals_one_open_case_per_person
    ON referrals (person_pseudonym) WHERE closed_at IS NULL AND person_pseudonym IS NOT NULL;

-- The vault: personal data encrypted (AES-GCM) with a key id; the case ref and field name are
-- bound as associated data. Erased (set to NULL) after the retention period of a closed case.
CREATE TABLE vault (
    case_ref       text PRIMARY KEY REFERENCES referrals (case_ref),
    personnummer   bytea,
    personnummer_key text,
    question       bytea,
    question_key   text,
    purpose        bytea,
    purpose_key    text,
    erased_at      timestamptz
);

-- Consent per party with its whole history (append-only); the latest row per party is in force.
CREATE TABLE consent_history (
    id                       bigserial PRIMARY KEY,
    case_ref                 text NOT NULL REFERENCES referrals (case_ref),
    party                    text NOT NULL,
    action                   text NOT NULL CHECK (action IN ('given', 'withdrawn')),
    on_date                  date NOT NULL,
    form_ref                 text,
    on_behalf_of_individual  boolean NOT NULL DEFAULT false,
    recorded_by              text NOT NULL,
    recorded_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consent_history_case ON consent_history (case_ref, party, id);

-- Rejected submissions, without personal data: for the agency's follow-up and for counting.
CREATE TABLE rejections (
    id           bigserial PRIMARY KEY,
    party        text NOT NULL,
    agency_ref   text,
    channel      text NOT NULL,          -- amqp | http
    codes        text[] NOT NULL,
    reasons      jsonb NOT NULL,         -- code, field, texts: never a submitted value
    rejected_at  timestamptz NOT NULL
);
CREATE INDEX rejections_party ON rejections (party, rejected_at);

-- Every read of personal data (granted or denied). Append-only: updates and deletes refused.
CREATE TABLE access_log (
    id         bigserial PRIMARY KEY,
    case_ref   text NOT NULL,
    user_id    text NOT NULL,
    party      text NOT NULL,
    role       text NOT NULL,
    purpose    text NOT NULL,
    outcome    text NOT NULL CHECK (outcome IN ('granted', 'denied')),
    reason     text,
    read_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX access_log_case ON access_log (case_ref, read_at);

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER consent_history_append_only BEFORE UPDATE OR DELETE ON consent_history
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

-- Accepted referrals (cases). No personnummer in clear: a keyed pseudonym only.
CREATE TABLE referrals (
    case_ref           text PRIMARY KEY,
    referring_party    text NOT NULL,
    agency_ref         text NOT NULL,
    team_id            text NOT NULL,
    person_pseudonym   bytea,                 -- NULL for protected identity
    gender             text NOT NULL,
    age_band           text NOT NULL,
    income_source      text NOT NULL,
    consented_parties  text[] NOT NULL,
    referred_at        timestamptz NOT NULL,
    UNIQUE (referring_party, agency_ref)
);

-- Cases known to the follow-up service, with what the six-month comparison needs.
CREATE TABLE tracked_cases (
    case_ref                   text PRIMARY KEY,
    referring_party            text NOT NULL,
    income_source_at_referral  text NOT NULL,
    referred_at                timestamptz NOT NULL
);

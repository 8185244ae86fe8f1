-- Every service's view of consent per (case, party): what the referral service announced in
-- CaseReferred, ConsentRecorded and ConsentWithdrawn. A service gives a party no details of a
-- case unless its consent here is 'given'; applied_at says when this service applied it.
CREATE TABLE consent_state (
    case_ref     text NOT NULL,
    party        text NOT NULL,
    status       text NOT NULL CHECK (status IN ('given', 'withdrawn')),
    changed_at   timestamptz NOT NULL,   -- when the referral service recorded the change
    applied_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_ref, party)
);

-- Why a case was last postponed (a PostponementReason code) and the parties whose consent was
-- missing or withdrawn then: the coordinator's view of postponed cases (no personal data).
ALTER TABLE cases ADD COLUMN last_postponement text;
ALTER TABLE cases ADD COLUMN postponement_parties text[] NOT NULL DEFAULT '{}';

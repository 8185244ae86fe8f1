-- Where a consent comes from: a signed form (form_ref) or verbal, before a witness (a staff
-- member's name and role). Older rows given: on a signed form (form_ref was required), read so.
ALTER TABLE consent_history
    ADD COLUMN source       text CHECK (source IN ('signed_form', 'verbal')),
    ADD COLUMN witness_name text,
    ADD COLUMN witness_role text;

-- Who closed a case (CaseClosed's closed_by): a person's user id with their party, or
-- 'system:<why>' for a closure no person made. Older rows: unknown (NULL).
ALTER TABLE referrals
    ADD COLUMN closed_by       text,
    ADD COLUMN closed_by_party text;

-- Who closed a case: a person's user id (or an agency system's broker user) with their party,
-- or 'system:<why>'. Older closures: unknown (NULL).
ALTER TABLE tracked_cases
    ADD COLUMN closed_by       text,
    ADD COLUMN closed_by_party text;

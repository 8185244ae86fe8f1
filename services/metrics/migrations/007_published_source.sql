-- The digest of what a year's publication was worked out from (its facts, the teams and the
-- threshold): a year whose digest has not changed is not protected again.
ALTER TABLE published_years ADD COLUMN source text;

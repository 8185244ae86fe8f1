-- Every count of a year as last published, with its mark ("<5", "x", "–" or the count), so that
-- the next publication keeps the marks of the counts that have not changed: a reader may have
-- kept the earlier one.
ALTER TABLE published_years ADD COLUMN counts jsonb;

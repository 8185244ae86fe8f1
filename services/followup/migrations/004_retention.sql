-- Retention finds the cases closed longest ago.
CREATE INDEX tracked_cases_closed ON tracked_cases (closed_at) WHERE closed_at IS NOT NULL;

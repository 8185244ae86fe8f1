-- Retention: a case closed longer ago than the retention period leaves no case-level row here.
-- What it counted for is kept as anonymous counts: its cells (retired_cells, the same shape as
-- figure_cells, which keep them too) and, per meeting, that a case was recorded at it (a meeting
-- is counted held by its recorded cases). A rebuild starts from these: the figures stay exact.
CREATE TABLE retired_cells (LIKE figure_cells INCLUDING ALL);  -- the same cells, the same key
CREATE TABLE retired_meeting_cases (
    meeting_id      text PRIMARY KEY,
    cases_recorded  int  NOT NULL
);
CREATE INDEX case_facts_closed ON case_facts (closed_on) WHERE closed_on IS NOT NULL;
-- a case's logged events, found to delete them
CREATE INDEX event_log_case ON event_log ((payload->>'case_ref')) WHERE payload ? 'case_ref';

-- Retention: a case closed longer ago than the retention period leaves no case-level row here.
-- What it counted for is kept as anonymous counts: its cells (retired_cells, the same shape as
-- figure_cells, which keep them too) and, per meeting, that a case was recorded at it (a meeting
-- is counted held by its recorded cases). A rebuild starts from these: the figures stay exact.
CREATE TABLE retired_cells (
    day              date   NOT NULL,
    measure          text   NOT NULL,
    detail           text   NOT NULL,
    team_id          text   NOT NULL,
    municipality     text   NOT NULL,
    referring_party  text   NOT NULL,
    gender           text   NOT NULL,
    age_band         text   NOT NULL,
    income           text   NOT NULL,
    n                bigint NOT NULL,
    PRIMARY KEY (day, measure, detail, team_id, municipality, referring_party, gender, age_band, income)
);
CREATE TABLE retired_meeting_cases (
    meeting_id      text PRIMARY KEY,
    cases_recorded  int  NOT NULL
);
CREATE INDEX case_facts_closed ON case_facts (closed_on) WHERE closed_on IS NOT NULL;
-- a case's logged events, found to delete them
CREATE INDEX event_log_case ON event_log ((payload->>'case_ref')) WHERE payload ? 'case_ref';

-- The publication: every figure of a year, per period (month, quarter, year) and scope (ALL,
-- municipality:<name>, team:<id>), protected together. The API, the dashboard, the report and
-- the snapshots read only these rows, never the case-level projections.
CREATE TABLE published_figures (
    period        text NOT NULL,
    scope         text NOT NULL,
    year          int  NOT NULL,
    figures       jsonb NOT NULL,
    published_at  timestamptz NOT NULL,
    PRIMARY KEY (period, scope)
);
CREATE INDEX published_figures_year ON published_figures (year);

CREATE TABLE published_years (
    year          int PRIMARY KEY,
    published_at  timestamptz NOT NULL
);

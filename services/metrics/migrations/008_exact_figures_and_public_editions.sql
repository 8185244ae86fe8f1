-- Exact figures for signed-in readers, public editions for everyone else (docs/metrics.md).
-- The protected publication of every figure, and its snapshot state, are gone.
DROP TABLE published_figures;
DROP TABLE published_years;
DROP TABLE snapshot_state;

-- What each case and meeting counts for, summed per day and dimension (domain.case_cells):
-- a figure over any dates and filters is one sum over these rows. Kept up to date with the
-- facts, in the same transaction; rebuilt with them.
CREATE TABLE figure_cells (
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
CREATE INDEX figure_cells_measure_day ON figure_cells (measure, day);

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;

-- Every read of exact figures: who, in which role, of what (append-only).
CREATE TABLE figure_reads (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    read_at   timestamptz NOT NULL DEFAULT now(),
    user_id   text NOT NULL,
    role      text NOT NULL,
    party     text,
    via       text NOT NULL,   -- api, csv, report, command
    scope     text NOT NULL,
    query     jsonb NOT NULL
);
CREATE TRIGGER figure_reads_append_only BEFORE UPDATE OR DELETE ON figure_reads
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER figure_reads_no_truncate BEFORE TRUNCATE ON figure_reads
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- Public editions: made once a period has closed, then frozen; a correction is a new edition.
CREATE TABLE public_editions (
    period               text NOT NULL,
    edition              int  NOT NULL,
    period_start         date NOT NULL,
    period_end           date NOT NULL,
    made_at              timestamptz NOT NULL,
    threshold            int  NOT NULL,
    definitions_version  int  NOT NULL,
    reason               text NOT NULL,
    counts               jsonb NOT NULL,   -- every count with its mark (a year is tied to its quarters')
    figures              jsonb NOT NULL,   -- per scope (county, each municipality): what is shown
    PRIMARY KEY (period, edition)
);
CREATE TRIGGER public_editions_append_only BEFORE UPDATE OR DELETE ON public_editions
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER public_editions_no_truncate BEFORE TRUNCATE ON public_editions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- Every team known, also those known only from their cases (revision 0, named by their id): the
-- scopes and breakdowns read this small table, never all the cases.
INSERT INTO team_facts (team_id, municipality, team_name, revision)
SELECT DISTINCT ON (team_id) team_id, municipality, team_id, 0 FROM case_facts
WHERE team_id IS NOT NULL AND municipality IS NOT NULL
ORDER BY team_id, municipality
ON CONFLICT (team_id) DO NOTHING;

-- Cells must be worked out from the whole log once after this migration: flagged here, cleared
-- by the rebuild (events applied live before it are part of it).
CREATE TABLE projection_state (
    id               int PRIMARY KEY CHECK (id = 1),
    rebuild_needed   boolean NOT NULL
);
INSERT INTO projection_state (id, rebuild_needed) SELECT 1, EXISTS (SELECT 1 FROM event_log);

-- When suppressed aggregate snapshots (FiguresPublished) were last published, and up to which
-- event of the log: a new snapshot goes out when events have arrived since (debounced) and on
-- a schedule. One row; the instance holding its lock publishes.
CREATE TABLE snapshot_state (
    id            int PRIMARY KEY CHECK (id = 1),
    seq           bigint NOT NULL DEFAULT 0,
    published_at  timestamptz
);
INSERT INTO snapshot_state (id) VALUES (1);

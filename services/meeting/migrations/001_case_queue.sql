-- Cases waiting for a Trisam meeting, per team (first come, first served by queued_since).
CREATE TABLE case_queue (
    case_ref           text PRIMARY KEY,
    team_id            text NOT NULL,
    referring_party    text NOT NULL,
    consented_parties  text[] NOT NULL,
    queued_since       timestamptz NOT NULL
);
CREATE INDEX case_queue_team ON case_queue (team_id, queued_since);

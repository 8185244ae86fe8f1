-- Every domain event the metrics service receives, as received: the source from which its
-- projections can be rebuilt. Holds no personal data (events never carry any).
CREATE TABLE event_log (
    event_id     uuid PRIMARY KEY,
    event_type   text NOT NULL,
    version      int  NOT NULL,
    occurred_at  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    payload      jsonb NOT NULL
);
CREATE INDEX event_log_type ON event_log (event_type, occurred_at);

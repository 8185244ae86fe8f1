-- Transactional outbox: events written in the same transaction as the state change that
-- caused them; the relay publishes them with confirms and marks them sent.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    event_id        uuid NOT NULL UNIQUE,
    event_type      text NOT NULL,
    exchange        text NOT NULL,          -- exchange kind: events | intake
    routing_key     text NOT NULL,
    ordering_key    text NOT NULL,          -- events with one ordering key (a case) go out in order
    correlation_id  text NOT NULL,
    body            bytea NOT NULL,         -- the JSON envelope, exactly as published
    occurred_at     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text
);
CREATE INDEX outbox_pending ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_pending_by_key ON outbox (ordering_key, id) WHERE sent_at IS NULL;

-- Idempotent consumers: one row per (consumer, event) processed, written in the same
-- transaction as the effect. A redelivered event finds its row and has no second effect.
CREATE TABLE inbox (
    consumer     text NOT NULL,
    event_id     uuid NOT NULL,
    event_type   text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Per-case order that holds under requeues and across instances (shared/platform/sequences.py).
--
-- The producer numbers each event in every consuming service's line for its ordering key (the
-- case): 1, 2, 3, ... with no gaps, counting only the events that service receives. The numbers
-- travel in the message's headers (x-trisam-sequence: {service: n}) and are kept here with the
-- row the relay publishes.
ALTER TABLE outbox ADD COLUMN sequence jsonb;

-- The last number given in each line: (ordering key, consuming service).
CREATE TABLE outbox_sequence (
    ordering_key text   NOT NULL,
    consumer     text   NOT NULL,
    last_seq     bigint NOT NULL,
    PRIMARY KEY (ordering_key, consumer)
);

-- The consumer's side: the last number applied in each line (producer, ordering key), moved in
-- the same transaction as the event's effect and inbox row. An event whose number is not the
-- next is held back (its predecessor has not been applied yet) or, when it is older than what
-- was applied, dead-lettered as out of order. ``skipped`` counts numbers never applied because
-- an event was applied after waiting longer than the hold (TRISAM_SEQUENCE_HOLD_SECONDS) for
-- its predecessor: 0 everywhere in a healthy system.
CREATE TABLE inbox_sequence (
    consumer     text        NOT NULL,
    producer     text        NOT NULL,
    ordering_key text        NOT NULL,
    last_seq     bigint      NOT NULL,
    skipped      bigint      NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, producer, ordering_key)
);

-- The trace context (W3C headers: traceparent, tracestate) of the span that wrote the event, so
-- the relay, publishing later in another task, can carry the trace on in the message headers
-- (shared/platform/tracing.py). NULL: written outside any trace.
ALTER TABLE outbox ADD COLUMN trace_context jsonb;

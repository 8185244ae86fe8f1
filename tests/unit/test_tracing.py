"""Tracing's set-up and the W3C context in headers (shared/platform/tracing.py)."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from shared.platform import tracing


def test_off_without_an_endpoint_and_exporting_over_otlp_with_one(monkeypatch):
    for variable in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(variable, raising=False)
    off = tracing.tracing_for("referral", None)
    assert not off.enabled and isinstance(off.tracer, trace.NoOpTracer)

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    on = tracing.tracing_for("meeting", None)
    try:
        assert on.enabled and on.provider.resource.attributes["service.name"] == "meeting"
        [processor] = on.provider._active_span_processor._span_processors
        assert processor.span_exporter._endpoint == "http://collector:4318/v1/traces"
    finally:
        on.shutdown()
    assert tracing.otlp_endpoint("http://mine:4318") == "http://mine:4318"  # TRISAM_OTLP_ENDPOINT first


def test_the_context_goes_into_headers_and_comes_back_out_as_the_parent():
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("producer") as producer:
        headers = tracing.headers_of()
    assert headers["traceparent"].split("-")[2] == format(producer.get_span_context().span_id, "016x")
    # AMQP header values may arrive as bytes
    received = {"traceparent": headers["traceparent"].encode(), "x-trisam-ordering-key": "TS-1"}
    with tracer.start_as_current_span("consumer", context=tracing.context_from(received)) as consumer:
        assert consumer.parent.span_id == producer.get_span_context().span_id
        assert consumer.get_span_context().trace_id == producer.get_span_context().trace_id
    assert tracing.headers_of(tracing.context_from(None)) == {}  # no context: no headers, a new trace


def test_with_tracing_off_a_context_that_arrives_still_passes_on():
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("upstream") as upstream:
        headers = tracing.headers_of()
    with tracing.OFF.tracer.start_as_current_span("here", context=tracing.context_from(headers)):
        assert tracing.headers_of() == headers  # the no-op span carries its parent's context
    assert upstream.get_span_context().is_valid

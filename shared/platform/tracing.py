"""Tracing with OpenTelemetry: one referral is one trace across the four services.

Spans: the HTTP request (FastAPI's instrumentation), the relay's publish of an outbox row
(``publish <type>``, PRODUCER), a delivery's consumption (``process <type>``, CONSUMER) and its
handler (``handle <type>``). The W3C trace context travels in the AMQP message headers
(``traceparent``, ``tracestate``):

- a unit of work that emits an event keeps the context of the span current at that moment
  (the HTTP request's, the handler's) with the outbox row (``trace_context``);
- the relay, later and in another task, starts its publish span as a child of that context and
  puts its own context into the message's headers;
- the consumer starts its consume span as a child of the context in the headers, and the
  handler span under it; events the handler emits carry the handler's context on.

Group commit (``consumer.Batches``) applies deliveries of different referrals in one
transaction, in a worker task: each handler span is started with its own delivery's consume
span as parent (kept on the ``Delivery``), not as one batch span with links to many traces, so
each referral's trace stays one tree and the events each handler emits carry its own trace on;
the shared transaction shows as ``trisam.batch_size`` on the handler spans.

Off unless an OTLP endpoint is configured (``TRISAM_OTLP_ENDPOINT``, or the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``): then the tracer is
OpenTelemetry's no-op tracer and HTTP is not instrumented; a trace context that arrives in a
message still passes on (a no-op span carries its parent's context), which costs a header
parse and a format.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATOR = TraceContextTextMapPropagator()  # W3C trace context: traceparent, tracestate


@dataclass
class Tracing:
    """A service's tracer, and its provider when spans are recorded (None: tracing is off)."""

    tracer: trace.Tracer
    provider: Any = None  # opentelemetry.sdk.trace.TracerProvider

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def flush(self, timeout_millis: int = 2000) -> None:
        if self.provider is not None:
            self.provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


OFF = Tracing(trace.NoOpTracer())


def otlp_endpoint(configured: str | None) -> str | None:
    """Where spans go: TRISAM_OTLP_ENDPOINT, else the standard OpenTelemetry variables."""
    return (
        configured
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or None
    )


def tracing_for(service: str, configured_endpoint: str | None, provider: Any = None) -> Tracing:
    """The service's tracing: with ``provider`` given (a test's, with an in-memory exporter),
    that one; with an OTLP endpoint (``otlp_endpoint``), a provider exporting to it over HTTP in
    batches (in a thread of its own); otherwise off."""
    if provider is None:
        endpoint = otlp_endpoint(configured_endpoint)
        if not endpoint:
            return OFF
        provider = _otlp_provider(service, endpoint)
    return Tracing(provider.get_tracer("trisam.platform"), provider)


def _otlp_provider(service: str, endpoint: str) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service, "service.namespace": "trisam"}))
    # The standard variables name the collector's base address; OTLP/HTTP takes traces at /v1/traces
    traces = endpoint if endpoint.rstrip("/").endswith("/v1/traces") else endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces)))
    return provider


def context_from(headers: Mapping[str, Any] | None) -> Context:
    """The trace context a message's headers (or an outbox row's ``trace_context``) carry; an
    empty context (a new trace) when they carry none."""
    if not headers:
        return Context()
    carrier = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in headers.items() if k in _FIELDS}
    return PROPAGATOR.extract(carrier, context=Context())


def headers_of(ctx: Context | None = None) -> dict[str, str]:
    """The W3C headers of a context (default: the current one): what an outbox row keeps and
    a message carries; empty when there is no span."""
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=ctx if ctx is not None else otel_context.get_current())
    return carrier


_FIELDS = frozenset(PROPAGATOR.fields)

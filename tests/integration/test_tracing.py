"""Tracing: one referral is one trace across the four services (shared/platform/tracing.py).

The four services run as runtimes in this process, each with its own tracer provider (its
``service.name``) and one in-memory exporter for all. The chain that must hold, span by span:

    process SubmitReferral (referral, a new trace: the agency sends no context)
      handle SubmitReferral
        publish CaseReferred (the relay, later, from the outbox row's context)
          process CaseReferred (meeting, followup, metrics: each a child of that publish span)
            handle CaseReferred
              publish CaseScheduled ... (meeting: the events a handler emits carry the trace on)
"""

from __future__ import annotations

import random

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.followup import app as followup_app
from services.meeting import app as meeting_app
from services.metrics import app as metrics_app
from services.referral import app as referral_app
from shared.contracts.vocabulary import Party
from tests.support import broker as amqp
from tests.support.agencies import take_replies
from tests.support.http import client_for, token
from tests.support.referrals import TEAM, send_referral, submit_referral

pytestmark = pytest.mark.infra

CONSUMERS = ("meeting", "followup", "metrics")


def provider(service: str, exporter: InMemorySpanExporter) -> TracerProvider:
    traced = TracerProvider(resource=Resource.create({"service.name": service}))
    traced.add_span_processor(SimpleSpanProcessor(exporter))
    return traced


def service_of(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])


def one(spans: list[ReadableSpan], name: str, service: str, trace_id: int | None = None) -> ReadableSpan:
    found = [
        s
        for s in spans
        if s.name == name and service_of(s) == service and (trace_id is None or s.context.trace_id == trace_id)
    ]
    assert len(found) == 1, (name, service, [(s.name, service_of(s)) for s in spans])
    return found[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


def assert_fans_out(spans: list[ReadableSpan], published: ReadableSpan) -> None:
    """The CaseReferred a publish span sent is consumed by the three other services, each
    consume span a child of it, each handler span a child of its consume span."""
    trace_id = published.context.trace_id
    for service in CONSUMERS:
        consumed = one(spans, "process CaseReferred", service, trace_id)
        assert consumed.kind == SpanKind.CONSUMER
        assert parent_of(consumed) == published.context.span_id, service
        handled = one(spans, "handle CaseReferred", service, trace_id)
        assert parent_of(handled) == consumed.context.span_id, service


async def start_all(settings, runtimes, exporter, services=("referral", *CONSUMERS)):
    apps = {"referral": referral_app, "meeting": meeting_app, "followup": followup_app, "metrics": metrics_app}
    return {
        name: await runtimes(apps[name].spec(settings), settings, tracer_provider=provider(name, exporter))
        for name in services
    }


async def spans_until(exporter: InMemorySpanExporter, done, what: str) -> list[ReadableSpan]:
    async def ready():
        spans = list(exporter.get_finished_spans())
        return done(spans) and spans

    return await amqp.eventually(ready, timeout=30, what=what)


async def test_an_agency_referral_is_one_trace_across_the_four_services(agencies, settings, runtimes):
    exporter = InMemorySpanExporter()
    await start_all(settings, runtimes, exporter)
    await send_referral(agencies[Party.AF], settings.namespace, submit_referral(random.Random(31)))
    [accepted] = await take_replies(agencies[Party.AF], settings.namespace, 1)
    assert accepted["event_type"] == "ReferralAccepted"

    def complete(spans):  # (a consume span ends last: after its handler's, at the ack)
        consumed = {service_of(s) for s in spans if s.name == "process CaseReferred"}
        return consumed == set(CONSUMERS) and any(
            s.name == "process CaseScheduled" and service_of(s) == "metrics" for s in spans
        )

    spans = await spans_until(exporter, complete, "every service to handle the referral's events")

    received = one(spans, "process SubmitReferral", "referral")
    assert received.kind == SpanKind.CONSUMER and received.parent is None  # the agency sent no context
    trace_id = received.context.trace_id
    handled = one(spans, "handle SubmitReferral", "referral", trace_id)
    assert parent_of(handled) == received.context.span_id
    # the relay's publish spans: children of the handler span that wrote the outbox rows
    for event in ("CaseReferred", "ReferralAccepted"):
        published = one(spans, f"publish {event}", "referral", trace_id)
        assert published.kind == SpanKind.PRODUCER and parent_of(published) == handled.context.span_id, event
    assert_fans_out(spans, one(spans, "publish CaseReferred", "referral", trace_id))
    # an event a consumer's handler emits carries the trace on (meeting → metrics)
    scheduled = one(spans, "publish CaseScheduled", "meeting", trace_id)
    assert parent_of(scheduled) == one(spans, "handle CaseReferred", "meeting", trace_id).context.span_id
    assert parent_of(one(spans, "process CaseScheduled", "metrics", trace_id)) == scheduled.context.span_id
    assert {service_of(s) for s in spans if s.context.trace_id == trace_id} == {"referral", *CONSUMERS}


async def test_an_http_referral_is_one_trace_from_the_request(settings, runtimes):
    exporter = InMemorySpanExporter()
    started = await start_all(settings, runtimes, exporter)
    async with client_for(started["referral"]) as api:
        body = submit_referral(random.Random(32))["payload"]
        officer = token(settings, party="FK", role="officer", teams=[TEAM])
        response = await api.post("/api/v1/referrals", json=body, headers=officer)
        assert response.status_code == 201, response.text
    spans = await spans_until(
        exporter,
        lambda spans: {service_of(s) for s in spans if s.name == "process CaseReferred"} == set(CONSUMERS),
        "every service to handle CaseReferred",
    )
    [request] = [s for s in spans if s.kind == SpanKind.SERVER and service_of(s) == "referral"]
    assert request.name == "POST /api/v1/referrals" and request.parent is None
    published = one(spans, "publish CaseReferred", "referral", request.context.trace_id)
    assert parent_of(published) == request.context.span_id
    assert_fans_out(spans, published)


async def test_in_a_group_commit_each_handler_span_has_its_own_delivery_as_parent(agencies, settings, runtimes):
    """Referrals accepted while the consumers are away wait in their queues; the consumers then
    apply several at once in one transaction (Batches). Each handler span is still the child
    of its own delivery's consume span, in its own referral's trace."""
    exporter = InMemorySpanExporter()
    await start_all(settings, runtimes, exporter, services=("referral",))
    rng = random.Random(33)
    for _ in range(6):
        await send_referral(agencies[Party.REGION], settings.namespace, submit_referral(rng))
    replies = await take_replies(agencies[Party.REGION], settings.namespace, 6)
    assert {r["event_type"] for r in replies} == {"ReferralAccepted"}
    published = [s for s in exporter.get_finished_spans() if s.name == "publish CaseReferred"]
    assert len(published) == 6 and len({s.context.trace_id for s in published}) == 6

    await start_all(settings, runtimes, exporter, services=CONSUMERS)
    spans = await spans_until(
        exporter,
        lambda spans: sum(s.name == "process CaseReferred" for s in spans) == 6 * len(CONSUMERS),
        "the consumers to handle the six referrals",
    )
    for span in published:
        assert_fans_out(spans, span)
    batched = [s for s in spans if s.name == "handle CaseReferred" and s.attributes["trisam.batch_size"] > 1]
    assert batched, "no delivery was applied in a group commit"

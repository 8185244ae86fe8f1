"""Prometheus metrics of one service process, in its own registry."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from shared.platform.db import PooledConnection


class ServiceMetrics:
    def __init__(self, service: str):
        self.registry = CollectorRegistry()
        labels = ["service", "event_type"]
        self.consumed = Counter(
            "trisam_messages_consumed_total", "Messages processed and acked", labels, registry=self.registry
        )
        self.duplicates = Counter(
            "trisam_messages_duplicate_total",
            "Redelivered or duplicated messages skipped by the inbox",
            labels,
            registry=self.registry,
        )
        self.failed = Counter(
            "trisam_messages_failed_total", "Handler failures (each delivery counted)", labels, registry=self.registry
        )
        self.dead_lettered = Counter(
            "trisam_messages_dead_lettered_total",
            "Messages sent to the dead-letter queue",
            ["service", "reason"],
            registry=self.registry,
        )
        self.held_back = Counter(
            "trisam_events_held_back_total",
            "Deliveries held back because an earlier event of their case was not applied yet",
            labels,
            registry=self.registry,
        )
        self.sequence_gaps = Counter(
            "trisam_sequence_gaps_total",
            "Events of a case never applied: a later one was applied after the hold (should stay 0)",
            ["service"],
            registry=self.registry,
        )
        self.published = Counter(
            "trisam_events_published_total", "Events published from the outbox", labels, registry=self.registry
        )
        self.publish_failed = Counter(
            "trisam_events_publish_failed_total", "Outbox publish attempts that failed", labels, registry=self.registry
        )
        self.rejected = Counter(
            "trisam_commands_rejected_total",
            "Agency commands answered with a rejection, per reason code",
            ["service", "command", "party", "code"],
            registry=self.registry,
        )
        self.dead_letter_actions = Gauge(
            "trisam_dead_letter_actions",
            "Dead letters replayed or discarded by operators so far, per reason code (read from the "
            "service's dead_letter_actions table: every instance reports the same number)",
            ["service", "action", "reason"],
            registry=self.registry,
        )
        # The gauges below are set when /metrics is read (Runtime.refresh_metrics): right even
        # when a loop that would set them is stuck. Alerts on them: deploy/prometheus/alerts.yml.
        self.outbox_backlog = Gauge(
            "trisam_outbox_backlog", "Events waiting in the outbox", ["service"], registry=self.registry
        )
        self.outbox_oldest_pending_seconds = Gauge(
            "trisam_outbox_oldest_pending_seconds",
            "Age of the oldest event waiting in the outbox, in seconds (0: none waiting)",
            ["service"],
            registry=self.registry,
        )
        self.ready = Gauge(
            "trisam_service_ready",
            "1 when the service is ready (database and broker connected, outbox relay running), else 0",
            ["service"],
            registry=self.registry,
        )
        # The follow-up service's
        self.followups_unrecorded_after_escalation = Gauge(
            "trisam_followups_unrecorded_after_escalation",
            "Follow-ups escalated to the team's coordinator longer ago than TRISAM_FOLLOWUP_OVERDUE_DAYS "
            "and still not recorded",
            ["service"],
            registry=self.registry,
        )
        # The metrics service's
        self.public_edition_lag_seconds = Gauge(
            "trisam_public_edition_lag_seconds",
            "How long the oldest public edition that is due (its period closed plus the grace days) "
            "has waited to be made, in seconds (0: none waiting)",
            ["service"],
            registry=self.registry,
        )
        self.handler_seconds = Histogram(
            "trisam_handler_seconds", "Handler latency including the transaction", labels, registry=self.registry
        )
        self.db_round_trips = Gauge(
            "trisam_db_round_trips",
            "Statements sent to PostgreSQL by this process's pooled connections (round trips)",
            registry=self.registry,
        )
        self.db_round_trips.set_function(lambda: PooledConnection.round_trips)
        self.db_commits = Gauge(
            "trisam_db_commits",
            "Transactions committed by this process's pooled connections (a statement alone counts as one)",
            registry=self.registry,
        )
        self.db_commits.set_function(lambda: PooledConnection.commits)
        self.service = service

    def count_rejection(self, command: str, party: str, codes: Iterable[str]) -> None:
        for code in codes:
            self.rejected.labels(self.service, command, party, code).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)

"""The alert rules and the dashboard (deploy/prometheus, deploy/grafana), as `make check` checks
them (tools/check_alerts.py), and the checker itself."""

from __future__ import annotations

from tools import check_alerts


def test_the_rules_and_the_dashboard_are_complete_and_read_only_metrics_that_exist():
    assert check_alerts.problems() == []
    names = {rule["alert"] for rule in check_alerts.rules()}
    assert names == {
        "TrisamDeadLetters",
        "TrisamOutboxNotPublishing",
        "TrisamConsumerLag",
        "TrisamCaseOrderGap",
        "TrisamFollowUpsUnrecordedAfterEscalation",
        "TrisamServiceNotReady",
        "TrisamPublicEditionsBehind",
    }


def test_metric_names_are_read_from_promql_without_functions_labels_or_keywords():
    expr = (
        'histogram_quantile(0.95, sum by (service, le) (rate(trisam_handler_seconds_bucket{a="b(c)"}[5m]))) '
        'or min by (job) (up{job=~"trisam-.+"}) == 0 unless on (x) absent(foo_bar offset 5m) > 6 * 3600'
    )
    assert check_alerts.metric_names(expr) == {"trisam_handler_seconds_bucket", "up", "foo_bar"}


def test_a_rule_without_runbook_or_with_an_unknown_metric_is_found(tmp_path, monkeypatch):
    rules = tmp_path / "alerts.yml"
    rules.write_text(
        """groups:
  - name: t
    rules:
      - alert: Bad
        expr: trisam_no_such_metric > 0
        labels: {severity: page}
        annotations: {summary: s, runbook_url: "docs/operations.md#no-such-section"}
"""
    )
    monkeypatch.setattr(check_alerts, "ALERTS", rules)
    assert check_alerts.problems() == [
        "Bad: no for",
        "Bad: labels.severity must be one of ['critical', 'warning']",
        "Bad: runbook_url docs/operations.md#no-such-section is not a section of docs/operations.md",
        "Bad: unknown metric trisam_no_such_metric (not in shared/platform/metrics.py or external_metrics.yml)",
    ]

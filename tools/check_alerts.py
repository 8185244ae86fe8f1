"""Check the alert rules and the dashboard (``make check``): ``python -m tools.check_alerts``.

- every rule of ``deploy/prometheus/alerts.yml`` has ``alert``, ``expr``, ``for``,
  ``labels.severity`` (warning or critical) and ``annotations.summary`` and ``runbook_url``, the
  runbook a section of ``docs/operations.md`` that exists;
- every metric name in a rule's expression or a panel of ``deploy/grafana/trisam.json`` is one
  the services export (``shared/platform/metrics.py``) or one of the documented exporters'
  (``deploy/prometheus/external_metrics.yml``);
- with promtool installed (on the PATH, or ``PROMTOOL=/path/to/promtool``; Debian's package
  ``prometheus`` has it): ``promtool check rules``, ``promtool test rules`` on
  ``alerts_test.yml`` and ``promtool check config`` on the example configuration. Without it
  those are skipped, said so, and the rest still runs (CI takes promtool from the package, .ci/run).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
EXTERNAL = PROMETHEUS / "external_metrics.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "trisam.json"
RUNBOOK = ROOT / "docs" / "operations.md"
SEVERITIES = {"warning", "critical"}

# PromQL words that are not metric names
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS |= {"inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not its functions, labels or keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values, regexes)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", text):
        if text[match.end() :].lstrip().startswith("("):  # a function or an aggregation
            continue
        if match.group().lower() not in KEYWORDS:
            names.add(match.group())
    return names


def platform_metrics() -> set[str]:
    """Every sample name the services' /metrics can give (``ServiceMetrics``)."""
    from shared.platform.metrics import ServiceMetrics

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}
    names = set()
    for family in ServiceMetrics("check").registry.collect():
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
    return names


def external_metrics() -> set[str]:
    documented = yaml.safe_load(EXTERNAL.read_text())
    return {name for exporter in documented.values() for name in exporter["metrics"]}


def anchors(markdown: str) -> set[str]:
    """The anchors of a Markdown file's headings, as GitHub makes them."""
    found = set()
    for line in markdown.splitlines():
        if match := re.match(r"#{1,6}\s+(.*)", line):
            title = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            found.add(title.replace(" ", "-"))
    return found


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def problems() -> list[str]:
    """What is wrong with the rules and the dashboard (empty: nothing)."""
    found = []
    known = platform_metrics() | external_metrics()
    sections = anchors(RUNBOOK.read_text()) if RUNBOOK.exists() else set()
    for rule in rules():
        name = rule.get("alert", "<a rule without a name>")
        labels, annotations = rule.get("labels") or {}, rule.get("annotations") or {}
        for what, present in (
            ("expr", rule.get("expr")),
            ("for", rule.get("for")),
            ("annotations.summary", annotations.get("summary")),
            ("annotations.runbook_url", annotations.get("runbook_url")),
        ):
            if not present:
                found.append(f"{name}: no {what}")
        if labels.get("severity") not in SEVERITIES:
            found.append(f"{name}: labels.severity must be one of {sorted(SEVERITIES)}")
        runbook = str(annotations.get("runbook_url", ""))
        if runbook and (not runbook.startswith("docs/operations.md#") or runbook.split("#", 1)[1] not in sections):
            found.append(f"{name}: runbook_url {runbook} is not a section of docs/operations.md")
        for metric in sorted(metric_names(str(rule.get("expr", ""))) - known):
            found.append(f"{name}: unknown metric {metric} (not in shared/platform/metrics.py or {EXTERNAL.name})")
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            for metric in sorted(metric_names(target["expr"]) - known):
                found.append(f"dashboard panel {panel['title']!r}: unknown metric {metric}")
    return found


def promtool() -> str | None:
    return os.environ.get("PROMTOOL") or shutil.which("promtool")


def run_promtool(tool: str) -> list[str]:
    """promtool's own checks and the rules' unit tests; what failed."""
    failed = []
    for args in (
        ["check", "rules", ALERTS.name],
        ["test", "rules", "alerts_test.yml"],
        ["check", "config", "prometheus.yml"],
    ):
        done = subprocess.run([tool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            failed.append(f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}")
    return failed


def main() -> int:
    found = problems()
    tool = promtool()
    if tool:
        found += run_promtool(tool)
    for problem in found:
        print(problem, file=sys.stderr)
    checked = f"{len(rules())} alert rules and the dashboard"
    if found:
        print(f"check_alerts: {len(found)} problem(s) in {checked}", file=sys.stderr)
        return 1
    print(f"check_alerts: {checked} OK" + ("" if tool else " (promtool not installed: its checks skipped)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

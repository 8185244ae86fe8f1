"""`make bench` cannot break unnoticed: the same benchmark at tiny sizes (seconds, no targets
checked; its figures mean nothing at this size) runs to its end and counts the work of a
referral (round trips, commits, publishes) from the services' own counters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_runs_at_tiny_sizes(settings):
    env = {**os.environ, "TRISAM_AMQP_URL": settings.amqp_url, "TRISAM_DATABASE_URL": settings.database_url}
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=280
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((ROOT / "bench" / "results-quick.json").read_text())
    work = results["end_to_end"]["per_referral"]
    assert work["round_trips"] > 0 and work["commits"] > 0 and work["published"] >= 1, work
    assert "PostgreSQL round trips per referral" in done.stdout

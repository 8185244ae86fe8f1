"""Reliability proof: the simulator's traffic through two instances of every service while
processes are killed, connections cut, database connections terminated and poison sent; at
the end a ledger that must balance: nothing lost, nothing applied twice. Then every event is
delivered a second time, and no state anywhere may change.

``make test`` runs the small version (2,000 referrals, no broker restart: a restart would
disturb other runs on the same broker). ``make faults`` runs the full one (TRISAM_FAULTS=full:
10,000 referrals, broker restarts), and writes its ledger to test-artifacts/faults.json.
"""

from __future__ import annotations

import os
import random
from urllib.parse import urlparse

import pytest

from tests.faults import chaos
from tests.support.proxy import CuttableProxy

pytestmark = pytest.mark.infra

FULL = os.environ.get("TRISAM_FAULTS") == "full"
SCALE = chaos.FULL if FULL else chaos.SMALL
if os.environ.get("TRISAM_FAULTS_REFERRALS"):  # e.g. a quicker full run while developing
    SCALE = chaos.Scale(**{**SCALE.__dict__, "referrals": int(os.environ["TRISAM_FAULTS_REFERRALS"])})


@pytest.mark.timeout(3600 if FULL else 900)
async def test_nothing_lost_nothing_twice_under_faults(settings, agencies, infra):
    rng = random.Random(int(os.environ.get("TRISAM_FAULTS_SEED", "8")))
    target = urlparse(settings.amqp_url)
    proxy = await CuttableProxy(target.hostname, target.port or 5672).start()
    try:
        report = await chaos.fault_run(
            settings,
            agencies,
            infra.amqp_url,
            SCALE,
            rng,
            proxy=proxy,
            artifact="faults.json" if FULL else "faults-small.json",
        )
    finally:
        await proxy.stop()
    chaos.assert_balanced(report, SCALE)

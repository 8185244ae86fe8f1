"""Reliability proof: the simulator's traffic through two instances of every service while
processes are killed, connections cut, database connections terminated and poison sent; at
the end a ledger that must balance: nothing lost, nothing applied twice. Then every event is
delivered a second time, and no state anywhere may change.

``make test`` runs the small version (2,000 referrals, no broker restart: a restart would
disturb other runs on the same broker). ``make faults`` runs the full one (TRISAM_FAULTS=full:
10,000 referrals, broker restarts), and writes its ledger to test-artifacts/faults.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import pytest

from shared.contracts.vocabulary import Party
from shared.platform.clock import Clock
from simulator.cli import county_teams
from simulator.simulation import Simulation
from tests.faults import chaos
from tests.support.proxy import CuttableProxy
from tests.support.system import ARTIFACTS, free_port

pytestmark = pytest.mark.infra

FULL = os.environ.get("TRISAM_FAULTS") == "full"
SCALE = chaos.FULL if FULL else chaos.SMALL
if os.environ.get("TRISAM_FAULTS_REFERRALS"):  # e.g. a quicker full run while developing
    SCALE = chaos.Scale(**{**SCALE.__dict__, "referrals": int(os.environ["TRISAM_FAULTS_REFERRALS"])})


@pytest.mark.timeout(3600 if FULL else 900)
async def test_nothing_lost_nothing_twice_under_faults(settings, agencies, infra):
    scale, rng = SCALE, random.Random(int(os.environ.get("TRISAM_FAULTS_SEED", "8")))
    admin_url = infra.amqp_url
    target = urlparse(settings.amqp_url)
    proxy = await CuttableProxy(target.hostname, target.port or 5672).start()
    services = settings.model_copy(update={"amqp_url": proxy.url_for(settings.amqp_url)})

    # the platform's clock: fast from now, stopping after the traffic and faults, so that the
    # run comes to rest with every follow-up that was due fired
    started = datetime.now(UTC)
    run_seconds = scale.traffic_seconds + 45
    stops = started + timedelta(seconds=run_seconds * chaos.SPEED)
    clock = Clock(speed=chaos.SPEED, started_at=started, stops_at=stops)
    names = chaos.instances()
    processes = chaos.ServiceProcesses(
        services,
        ports={name: free_port() for name in names},
        services=names,
        log_dir=ARTIFACTS / settings.namespace,
        extra_env=chaos.clock_env(started, stops),
    )
    processes.start_all()
    simulation = Simulation(
        settings,
        agencies={p: (a.amqp_url, a.user) for p, a in agencies.items()},
        meeting_urls=[processes.url("meeting"), processes.url("meeting-2")],
        teams=county_teams(),
        seed=rng.randrange(2**32),
        clock=clock,
    )
    injector = chaos.Injector(processes, proxy, settings, rng)
    report: dict = {"scale": scale.__dict__}
    try:
        await processes.wait_ready(timeout=120)
        await simulation.start()
        faults = asyncio.create_task(injector.run(scale, scale.traffic_seconds))
        traffic = asyncio.create_task(simulation.refer(scale.referrals, per_second=scale.per_second))
        await asyncio.sleep(scale.traffic_seconds * 0.4)
        poisons, refused = await chaos.send_poison(settings, agencies[Party.AF], admin_url)
        await asyncio.gather(traffic, faults)

        # every process back, the clock run out, the coordinators done: then at rest
        for name in names:
            if processes.procs[name].poll() is not None:
                processes.start(name)
        await processes.wait_ready(timeout=120)
        await asyncio.sleep(max(0.0, (stops - clock.now()).total_seconds() / chaos.SPEED) + 5)
        await simulation.stop_coordinating()
        report["at rest"] = await chaos.at_rest(settings, admin_url)
        await simulation.stop()

        report["faults"] = injector.done
        report["ledger"] = ledger = await chaos.ledger(settings, simulation)
        report["lost deliveries"] = gaps = await chaos.delivery_gaps(settings)
        report["duplicated effects"] = dupes = await chaos.duplicated_effects(settings, simulation)
        report["dead letters"] = dead = await chaos.dead_letters(settings, admin_url)
        report["poison"] = [p.__dict__ for p in poisons]
        report["refused by the broker"] = refused

        # the figures' cells, kept up to date event by event, equal those worked out afresh
        report["metrics cells that differ from the facts"] = cells = await chaos.cells_disagreeing_with_the_facts(
            settings
        )
        # replay: every event once more changes nothing
        before = await chaos.state_digest(settings)
        report["replayed events"] = await chaos.replay_every_event(settings, admin_url)
        await chaos.at_rest(settings, admin_url)
        after = await chaos.state_digest(settings)
        report["changed by the replay"] = changed = sorted(t for t in before if before[t] != after.get(t))
    finally:
        await simulation.stop()
        processes.stop_all()
        await proxy.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / ("faults.json" if FULL else "faults-small.json")).write_text(
            json.dumps(report, indent=2, default=str) + "\n"
        )
    print("\n" + json.dumps(report, indent=2, default=str))

    # the faults really happened
    assert injector.done["kill"] >= scale.kills and injector.done["cut"] >= scale.cuts
    assert injector.done["db_loss"] >= scale.db_losses
    assert injector.done["broker_restart"] >= scale.broker_restarts
    assert refused[0].startswith("forged_user_id"), f"a forged user_id must be refused: {refused}"
    # every referral answered, exactly once in every service
    assert ledger["sent"] == scale.referrals
    assert ledger["accepted (answered)"] + ledger["rejected (answered)"] == ledger["sent"], "lost referrals"
    assert ledger["rejected (answered)"] > 0 and ledger["accepted (answered)"] > scale.referrals * 0.9
    accepted = ledger["accepted (answered)"]
    for place in ("referrals in referral", "cases in meeting", "cases in followup", "referrals counted in metrics"):
        assert ledger[place] == accepted, place
    assert ledger["rejections in referral"] == ledger["rejected (answered)"]
    # consultations and follow-ups
    assert ledger["consulted (coordinators)"] > 0
    assert (
        ledger["consulted in meeting"] == ledger["consulted (coordinators)"] == ledger["consulted counted in metrics"]
    )
    assert ledger["follow-ups scheduled"] == 2 * ledger["consulted in meeting"]  # plan check, six months
    assert ledger["follow-ups counted in metrics"] == ledger["follow-ups scheduled"]
    assert ledger["follow-ups fired"] > 0
    assert ledger["follow-ups due (agencies)"] == ledger["follow-ups fired"]
    assert (
        ledger["follow-ups recorded (agencies)"]
        == ledger["follow-ups answered (agencies)"]
        == ledger["follow-ups recorded in followup"]
    )
    # nothing lost between services, nothing applied twice
    assert gaps == {}, gaps
    assert dupes == {}, dupes
    # the dead-letter queues hold exactly the poison, each with its reason
    expected = sorted((service, p.message_id, p.reason) for p in poisons for service in p.dead_in)
    found = sorted((service, mid, reason) for service, items in dead.items() for mid, reason in items)
    assert found == expected
    # at rest: queues drained, outboxes empty; and the replay changed nothing
    assert not any(report["at rest"]["queues"].values())
    assert not any(report["at rest"]["outbox_pending"].values())
    assert report["replayed events"] > accepted
    assert changed == [], f"replaying every event changed {changed}"
    assert cells == {}, cells

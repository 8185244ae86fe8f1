"""The fault run on a real three-node RabbitMQ cluster: the platform's quorum queues replicated
on all three nodes, and while the simulator's traffic flows through two instances of every
service (and service processes are killed, connections cut, database connections terminated,
poison sent), the node that leads most of the run's queues is killed (SIGKILL) and brought back,
twice. The ledger must still balance: nothing lost, nothing applied twice; then every event is
delivered once more and nothing changes.

The test starts the cluster itself (``tools/cluster.py``, as ``make cluster`` does: nodes
trisam-c1…c3@localhost on ports 5681–5683) and stops it again unless it was already running.
The services reach the cluster through a small TCP load balancer (``CuttableProxy`` with the three
nodes as targets: each new connection to the next node, a node that is down passed over), as they
would through a load balancer in production (docs/deployment.md); so a node kill also cuts the
connections of the services that were on it, and they reconnect to a surviving node. The agencies
(the simulator) and the test's own look at the broker go through a second one, never cut.

Part of ``make faults`` only (tests/faults/conftest.py): it takes minutes, not seconds. The
report goes to test-artifacts/faults-cluster.json.
"""

from __future__ import annotations

import asyncio
import os
import random

import pytest

from shared.platform.config import Settings
from shared.platform.topology import Topology
from tests.conftest import RUN_PREFIX, new_namespace
from tests.faults import chaos
from tests.support.agencies import create_agencies, delete_agencies
from tests.support.infra import Infra
from tests.support.proxy import CuttableProxy
from tools.cluster import NOFILE, Cluster

pytestmark = pytest.mark.infra

SCALE = chaos.CLUSTER
if os.environ.get("TRISAM_FAULTS_REFERRALS"):  # a quicker run while developing
    SCALE = chaos.Scale(**{**SCALE.__dict__, "referrals": int(os.environ["TRISAM_FAULTS_REFERRALS"])})


@pytest.fixture(scope="module")
async def cluster():
    cluster = Cluster()
    was_up = cluster.is_up()
    try:
        await asyncio.to_thread(cluster.start)
    except RuntimeError as exc:
        pytest.fail(f"could not start the three-node RabbitMQ cluster (make cluster): {exc}")
    print(f"\n[cluster] {'already running' if was_up else 'started'}:\n{cluster.status()}")
    yield cluster
    if not was_up:
        await asyncio.to_thread(cluster.stop)


def _hard_nofile() -> int:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)


@pytest.mark.timeout(1800)
async def test_nothing_lost_nothing_twice_when_a_cluster_node_dies(cluster, infra):
    targets = [("127.0.0.1", node.amqp_port) for node in cluster.nodes]
    front = await CuttableProxy.balancing(targets).start()  # agencies and the test itself: never cut
    proxy = await CuttableProxy.balancing(targets).start()  # the services: cut by the injector
    admin_url = front.url_for(cluster.nodes[0].amqp_url())
    on_cluster = Infra(admin_url, infra.database_url, source="cluster")
    agencies = await create_agencies(on_cluster, RUN_PREFIX, run=cluster.runner())
    settings = Settings(
        amqp_url=admin_url,
        database_url=infra.database_url,
        namespace=new_namespace(),
        outbox_poll_seconds=0.2,
        outbox_max_backoff_seconds=1.0,
        max_handler_attempts=3,
        metrics_edition_check_seconds=0.5,
        agency_users={a.user: p.value for p, a in agencies.items()},
    )
    rng = random.Random(int(os.environ.get("TRISAM_FAULTS_SEED", "8")))
    try:
        # every node with the raised open-file limit
        limits = {node.name: cluster.open_file_limit(node) for node in cluster.nodes}
        assert all(limit >= _hard_nofile() for limit in limits.values()), limits

        report = await chaos.fault_run(
            settings, agencies, admin_url, SCALE, rng, proxy=proxy, cluster=cluster, artifact="faults-cluster.json"
        )

        # the platform's quorum queues: a replica on every node, all online again
        queues = await asyncio.to_thread(cluster.queues, settings.namespace + ".")
        topology = Topology(settings.namespace)
        assert sorted(q["name"] for q in queues) == sorted(topology.all_queue_names())
        everyone = sorted(node.name for node in cluster.nodes)
        for queue in queues:
            assert queue["type"] == "quorum", queue
            assert sorted(queue["members"]) == everyone, queue
            assert sorted(queue["online"]) == everyone, queue
        # each node killed led queues of the run at that moment
        assert len(report["node kills"]) == SCALE.node_kills
        for kill in report["node kills"]:
            assert kill["leader of"], kill
        print(f"[cluster] open-file limits {limits}; node kills {report['node kills']}")
        chaos.assert_balanced(report, SCALE)
    finally:
        if cluster.is_up():  # left running (make cluster): without this run's queues and users
            topology = Topology(settings.namespace)
            from shared.platform.topology import delete

            await delete(admin_url, topology.all_queue_names(), topology.all_exchange_names())
            await delete_agencies(on_cluster, agencies, run=cluster.runner())
        await front.stop()
        await proxy.stop()

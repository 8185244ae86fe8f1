"""A three-node RabbitMQ cluster on this machine, beside the machine's own broker (never touching
it): ``make cluster`` starts it (idempotent), ``make cluster-stop`` stops it and removes its data.
The cluster fault run (tests/faults/test_cluster.py) starts it itself through this module.

    python -m tools.cluster start | stop [--keep] | status

Nodes ``trisam-c1@localhost`` … ``trisam-c3@localhost``: AMQP on 127.0.0.1:5681–5683, Erlang
distribution on 25681–25683, no plugins (no management UI), default user guest/guest (loopback
only). Each has its own data and logs under ``TRISAM_CLUSTER_DIR`` (default /tmp/trisam-cluster),
its own configuration file there, and the cluster's own Erlang cookie in ``<dir>/.erlang.cookie``:
the nodes and every rabbitmqctl call of this module run with ``HOME=<dir>``, so the cookie of the
machine's node (/var/lib/rabbitmq/.erlang.cookie) and its configuration (/etc/rabbitmq) are never
read or changed. Each node starts after ``ulimit -n 65536`` (or the hard limit, where that is
lower and cannot be raised, as in an unprivileged container). Nodes 2 and 3 join node 1
(``stop_app``, ``join_cluster``, ``start_app``); a quorum queue declared afterwards gets a replica
on all three (the default initial group size is the cluster's size).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIR = Path(os.environ.get("TRISAM_CLUSTER_DIR", "/tmp/trisam-cluster"))
SIZE = 3
NOFILE = 65536


def _sbin(tool: str) -> str:
    """The RabbitMQ script itself: Debian's /usr/sbin wrappers switch to the rabbitmq user and
    to its home (and so its cookie); the scripts under /usr/lib/rabbitmq/bin do not."""
    direct = Path("/usr/lib/rabbitmq/bin") / tool
    if direct.exists():
        return str(direct)
    found = shutil.which(tool)
    if found is None:
        raise RuntimeError(f"{tool} not found: the cluster needs RabbitMQ installed (apt-get install rabbitmq-server)")
    return found


@dataclass(frozen=True)
class Node:
    index: int  # 1, 2, 3

    @property
    def name(self) -> str:
        return f"trisam-c{self.index}@localhost"

    @property
    def amqp_port(self) -> int:
        return 5680 + self.index

    @property
    def dist_port(self) -> int:
        return 25680 + self.index

    def amqp_url(self, user: str = "guest", password: str = "guest") -> str:
        return f"amqp://{user}:{password}@127.0.0.1:{self.amqp_port}/"


class Cluster:
    def __init__(self, directory: Path = DEFAULT_DIR, size: int = SIZE):
        self.dir = Path(directory)
        self.nodes = [Node(i) for i in range(1, size + 1)]

    # ------------------------------------------------------------------ environment

    def _env(self, node: Node) -> dict[str, str]:
        base = self.dir / f"c{node.index}"
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))},
            "HOME": str(self.dir),  # the cluster's own .erlang.cookie
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(node.amqp_port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),  # empty: not /etc/rabbitmq's
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "node.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def _prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        cookie = self.dir / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(20).upper())
            cookie.chmod(0o400)
        (self.dir / "rabbitmq-env.conf").touch()
        (self.dir / "enabled_plugins").write_text("[].\n")
        for node in self.nodes:
            base = self.dir / f"c{node.index}"
            base.mkdir(exist_ok=True)
            (base / "rabbitmq.conf").write_text(
                f"listeners.tcp.default = 127.0.0.1:{node.amqp_port}\ncluster_partition_handling = pause_minority\n"
            )

    def ctl(self, node: Node, *args: str, tool: str = "rabbitmqctl", timeout: float = 60, check: bool = True) -> str:
        """Run rabbitmqctl (or rabbitmq-queues, …) against one node; its output."""
        done = subprocess.run(
            [_sbin(tool), "-n", node.name, "-q", *args],
            env=self._env(node),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{tool} -n {node.name} {' '.join(args)}: {(done.stderr or done.stdout).strip()[:500]}")
        return done.stdout

    def runner(self, node: Node | None = None):
        """A rabbitmqctl runner (argv list -> output) on the cluster, as tools.broker_users takes it."""
        target = node or self.nodes[0]
        return lambda args: self.ctl(target, *args)

    # ------------------------------------------------------------------ nodes

    def pid(self, node: Node) -> int | None:
        try:
            pid = int((self.dir / f"c{node.index}" / "node.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def running(self, node: Node) -> bool:
        if self.pid(node) is None:
            return False
        done = subprocess.run(
            [_sbin("rabbitmqctl"), "-n", node.name, "-q", "await_startup", "--timeout", "5"],
            env=self._env(node),
            capture_output=True,
            timeout=30,
        )
        return done.returncode == 0

    def start_node(self, node: Node, timeout: float = 120) -> None:
        """Start one node (in the background, its own session) and wait until it runs. A node that
        had been killed comes back with its data and rejoins the cluster by itself."""
        if self.pid(node) is None:
            out = open(self.dir / f"c{node.index}" / "server.out", "ab")
            subprocess.Popen(
                [
                    "bash",
                    "-c",
                    f'ulimit -n {NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "{_sbin("rabbitmq-server")}"',
                ],
                env=self._env(node),
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives `make cluster`; not hit by a Ctrl-C of the caller
            )
            out.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.pid(node) is not None and self.running(node):
                return
            if time.monotonic() > deadline:
                log = self.dir / f"c{node.index}" / "server.out"
                tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
                raise RuntimeError(f"{node.name} did not start within {timeout:.0f}s:\n{tail}")
            time.sleep(0.5)

    def kill(self, node: Node) -> int:
        """SIGKILL the node's Erlang VM (a crash, not a shutdown); returns its pid."""
        pid = self.pid(node)
        if pid is None:
            raise RuntimeError(f"{node.name} is not running")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while self.pid(node) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        return pid

    def stop_node(self, node: Node) -> None:
        pid = self.pid(node)
        if pid is None:
            return
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.ctl(node, "stop", timeout=60)
        deadline = time.monotonic() + 30
        while self.pid(node) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if (pid := self.pid(node)) is not None:
            os.kill(pid, signal.SIGKILL)

    # ------------------------------------------------------------------ cluster

    def members(self, node: Node) -> tuple[set[str], set[str]]:
        """(nodes in the cluster, running nodes) as this node sees them."""
        status = json.loads(self.ctl(node, "cluster_status", "--formatter", "json"))
        return set(status.get("disk_nodes", [])) | set(status.get("ram_nodes", [])), set(status["running_nodes"])

    def start(self) -> None:
        """Start every node that is not running, and join nodes 2… to node 1 where not yet
        joined. Idempotent: a running cluster is left as it is."""
        self._prepare()
        first, *others = self.nodes
        self.start_node(first)
        for node in others:
            self.start_node(node)
            if first.name not in self.members(node)[0]:
                self.ctl(node, "stop_app")
                self.ctl(node, "join_cluster", first.name)
                self.ctl(node, "start_app")
                self.ctl(node, "await_startup")
        all_nodes, running = self.members(first)
        wanted = {n.name for n in self.nodes}
        if all_nodes != wanted or running != wanted:
            raise RuntimeError(f"cluster not formed: members {sorted(all_nodes)}, running {sorted(running)}")

    def stop(self, keep: bool = False) -> None:
        """Stop every node (the others first, node 1 last); remove the data unless ``keep``."""
        for node in reversed(self.nodes):
            self.stop_node(node)
        if not keep and self.dir.exists():
            shutil.rmtree(self.dir)

    def open_file_limit(self, node: Node) -> int:
        """The node's open-file limit (soft), as its Erlang VM has it."""
        pid = self.pid(node)
        if pid is None:
            raise RuntimeError(f"{node.name} is not running")
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
        raise RuntimeError("no open-file limit in /proc")

    def is_up(self) -> bool:
        return all(self.pid(node) is not None for node in self.nodes)

    def amqp_urls(self) -> list[str]:
        return [node.amqp_url() for node in self.nodes]

    def queues(self, prefix: str = "", node: Node | None = None) -> list[dict]:
        """Every queue (of a name prefix): name, type, leader, members and online replicas."""
        target = node or next((n for n in self.nodes if self.pid(n) is not None), self.nodes[0])
        rows = json.loads(
            self.ctl(target, "list_queues", "name", "type", "leader", "members", "online", "--formatter", "json")
            or "[]"
        )
        return [row for row in rows if row["name"].startswith(prefix)]

    def node_named(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def status(self) -> str:
        lines = [f"cluster directory {self.dir}"]
        for node in self.nodes:
            pid = self.pid(node)
            state = f"pid {pid}" if pid else "not running"
            lines.append(f"  {node.name}: amqp 127.0.0.1:{node.amqp_port}, distribution {node.dist_port}, {state}")
        up = next((n for n in self.nodes if self.pid(n) is not None), None)
        if up is not None:
            members, running = self.members(up)
            lines.append(f"  members {sorted(members)}; running {sorted(running)}")
            limits = [self.open_file_limit(n) for n in self.nodes if self.pid(n) is not None]
            capped = f" (asked for {NOFILE}; this machine's hard limit caps it)" if min(limits) < NOFILE else ""
            lines.append(f"  open-file limit of the running nodes: {limits}{capped}")
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("start", "stop", "status"))
    parser.add_argument("--keep", action="store_true", help="stop: keep the nodes' data")
    args = parser.parse_args(argv)
    cluster = Cluster()
    try:
        if args.command == "start":
            started = time.monotonic()
            cluster.start()
            print(f"RabbitMQ cluster up in {time.monotonic() - started:.1f}s")
            print(cluster.status())
            print("TRISAM_AMQP_URL=" + cluster.nodes[0].amqp_url() + "  (any node; `make cluster-stop` to stop)")
        elif args.command == "stop":
            cluster.stop(keep=args.keep)
            print("RabbitMQ cluster stopped" + ("" if args.keep else f"; {cluster.dir} removed"))
        else:
            print(cluster.status())
    except RuntimeError as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

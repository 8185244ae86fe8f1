"""Broker users and permissions: one user per agency, one per service (deploy/rabbitmq/).

An agency's user may publish only to the intake exchange, only with routing keys that start
with its own party (topic permission), and may read only its own queue on the agency exchange
(replies and reminders). RabbitMQ checks the ``user_id`` property of what it publishes against
the connection's user, so the referral service can trust ``user_id`` to name the sender.

Used by `make run` (through rabbitmqctl, where the broker is local), by the tests, and to write
``deploy/rabbitmq/definitions.json`` (``python -m tools.broker_users``), which the Docker set-up
loads at broker start.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from shared.contracts import Command, owner_of, registered
from shared.contracts.envelope import AGENCY, EVENTS
from shared.contracts.vocabulary import Party
from shared.platform.topology import EXCHANGES

SERVICES = ("referral", "meeting", "followup", "metrics")
DEFINITIONS = Path(__file__).resolve().parents[1] / "deploy" / "rabbitmq" / "definitions.json"


@dataclass(frozen=True)
class BrokerUser:
    name: str
    password: str
    configure: str
    write: str
    read: str
    # exchange name -> (write pattern, read pattern) for routing-key (topic) permissions
    topic: tuple[tuple[str, str, str], ...] = ()
    tags: str = ""


def _escape(namespace_pattern: str) -> str:
    return namespace_pattern.replace(".", r"\.")


def agency_user(
    name: str, password: str, party: Party, namespace_pattern: str, intake_exchanges: tuple[str, ...] = ()
) -> BrokerUser:
    """``namespace_pattern`` is a regex matching the namespace(s) (``trisam``)."""
    ns = _escape(namespace_pattern)
    return BrokerUser(
        name=name,
        password=password,
        configure="^$",
        write=rf"^{ns}\.intake$",
        read=rf"^{ns}\.agency\.{party.value}$",
        topic=tuple((exchange, rf"^{party.value}\.", "^$") for exchange in intake_exchanges),
    )


def service_user(name: str, password: str, namespace: str, service: str | None = None) -> BrokerUser:
    """A service's user. Every service declares the whole topology (configure), binds and writes
    its own messages anywhere in the namespace. With ``service``: it may read only its own queues
    (``<ns>.<service>``, its dead letters and agency intake queues) and the exchanges (a binding
    reads its exchange), never another service's queue nor an agency's; on the events exchange
    it may publish only the event types that service owns (topic permission), so that no service
    can forge another's event (the consumers also check the sender, see
    shared/platform/consumer.py). Without: every queue but the agencies' own."""
    ns = _escape(namespace)
    everything = rf"^{ns}\..*"
    if service:
        exchanges = "|".join(EXCHANGES)
        read = rf"^{ns}\.({exchanges}|{_escape(service)}(\..+)?)$"
    else:
        read = rf"^{ns}\.(?!{AGENCY}\.).*"
    topic = ((f"{namespace}.{EVENTS}", owned_routing_keys(service), ".*"),) if service else ()
    return BrokerUser(
        name=name,
        password=password,
        configure=everything,
        write=everything,
        read=read,
        topic=topic,
    )


def owned_routing_keys(service: str) -> str:
    """The routing keys of the events a service owns: ``CaseClosed``, ``FollowUpDue.AF``, ..."""
    names = sorted(
        {
            cls.name
            for cls in registered().values()
            if owner_of(cls) == service and cls.exchange == EVENTS and not issubclass(cls, Command)
        }
    )
    return rf"^({'|'.join(names)})(\..+)?$" if names else "^$"


def dev_users(namespace: str = "trisam") -> list[BrokerUser]:
    """The development users (passwords are dev values; set real ones in production)."""
    users = [
        agency_user(
            f"{namespace}-{p.value.lower()}",
            f"{namespace}-{p.value.lower()}-dev",
            p,
            namespace,
            (f"{namespace}.intake",),
        )
        for p in Party
    ]
    users += [service_user(f"{namespace}-svc-{s}", f"{namespace}-svc-{s}-dev", namespace, s) for s in SERVICES]
    return users


def apply_with_rabbitmqctl(users: list[BrokerUser], vhost: str = "/", run=None) -> None:
    """Create the users and set their permissions, only where the broker differs (idempotent;
    an existing user keeps its password). ``run`` runs one rabbitmqctl argv list."""
    run = run or _local_rabbitmqctl

    def listing(*args) -> list[dict]:
        return json.loads(run([*args, "--formatter", "json"]) or "[]")

    existing = {u["user"] for u in listing("list_users")}
    permissions = {p["user"]: (p["configure"], p["write"], p["read"]) for p in listing("list_permissions", "-p", vhost)}
    topic = {
        (t["user"], t["exchange"]): (t["write"], t["read"]) for t in listing("list_topic_permissions", "-p", vhost)
    }
    for user in users:
        if user.name not in existing:
            run(["add_user", user.name, user.password])
        if permissions.get(user.name) != (user.configure, user.write, user.read):
            run(["set_permissions", "-p", vhost, user.name, user.configure, user.write, user.read])
        for exchange, write, read in user.topic:
            if topic.get((user.name, exchange)) != (write, read):
                run(["set_topic_permissions", "-p", vhost, user.name, exchange, write, read])
        if user.tags:
            run(["set_user_tags", user.name, user.tags])


def delete_with_rabbitmqctl(names: list[str], run=None) -> None:
    run = run or _local_rabbitmqctl
    for name in names:
        try:
            run(["delete_user", name])
        except RuntimeError:
            pass


def rabbitmqctl_available() -> bool:
    return shutil.which("rabbitmqctl") is not None


def _local_rabbitmqctl(args: list[str]) -> str:
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {args[0]} failed: {done.stderr.strip()[:300]}")
    return done.stdout


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256 format, for definitions files."""
    salt = salt or os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(
    users: list[BrokerUser], vhost: str = "/", admin: tuple[str, str] | None = None, salt: bytes = b"trsm"
) -> dict:
    """A definitions document (users and permissions; the services declare the topology)."""
    everyone = list(users) + ([BrokerUser(admin[0], admin[1], ".*", ".*", ".*", tags="administrator")] if admin else [])
    return {
        "users": [
            {
                "name": u.name,
                "password_hash": password_hash(u.password, salt),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [u.tags] if u.tags else [],
            }
            for u in everyone
        ],
        "vhosts": [{"name": vhost}],
        "permissions": [
            {"user": u.name, "vhost": vhost, "configure": u.configure, "write": u.write, "read": u.read}
            for u in everyone
        ],
        "topic_permissions": [
            {"user": u.name, "vhost": vhost, "exchange": exchange, "write": write, "read": read}
            for u in everyone
            for exchange, write, read in u.topic
        ],
    }


def definitions_text() -> str:
    return json.dumps(definitions(dev_users(), admin=("trisam", "trisam")), indent=2) + "\n"


if __name__ == "__main__":
    DEFINITIONS.parent.mkdir(parents=True, exist_ok=True)
    DEFINITIONS.write_text(definitions_text())
    print(f"wrote {DEFINITIONS}", file=sys.stderr)

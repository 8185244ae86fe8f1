"""The referral service's unit of work: one transaction of its database, with the inbox and
outbox (``shared.platform.uow``), its repositories (``store.py``), and what its use cases need
besides (``Dependencies``: the team registry file, the vault's keys, the pseudonym key, the
clock, which broker users are agencies, the retention period).

``tests/fakes/referral.py`` has the same in memory, for unit tests of the use cases."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from shared.platform.clock import Clock
from shared.platform.db import Conn
from shared.platform.teams import Team
from shared.platform.uow import Message, PostgresUnitOfWork

from . import store
from .vault import Keyring


@dataclass(frozen=True)
class Dependencies:
    teams: Mapping[str, Team]  # the registry file; TeamUpdated may have changed it since
    keyring: Keyring  # seals and opens the vault
    pseudonym_key: bytes = field(repr=False)  # keys the person's pseudonym (never in a log)
    clock: Clock
    agency_users: dict[str, str]  # broker user -> party
    retention: timedelta  # how long a closed case's personal data is kept


class ReferralUnitOfWork(PostgresUnitOfWork):
    def __init__(self, conn: Conn, deps: Dependencies, *, message: Message | None = None) -> None:
        super().__init__(conn, "referral", message=message)
        self.deps = deps
        self.cases = store.Cases(conn)
        self.vault = store.Vault(conn)
        self.consents = store.ConsentHistory(conn)
        self.rejections = store.Rejections(conn)
        self.access_log = store.AccessLog(conn)
        self.teams = store.TeamRegistry(conn)
        self.intake = store.IntakeLookups(conn, deps.teams)

"""Least privilege in PostgreSQL: each service runs as its own role, which may use only its own
database, owns nothing there, and may only read and add to its audit and access logs. Real
PostgreSQL."""

from __future__ import annotations

import asyncpg
import pytest

from services.meeting import app as meeting_app
from services.referral import app as referral_app
from shared.platform import db
from shared.platform.config import with_database

pytestmark = pytest.mark.infra


async def test_a_service_runs_as_its_own_role_that_cannot_rewrite_its_audit_trail_or_reach_another_database(
    settings, runtimes
):
    referral = await runtimes(referral_app.spec(settings), settings)
    meeting = settings.database_name("meeting")
    await db.prepare_database(settings.database_url, meeting, meeting_app.spec(settings).migrations)
    async with referral.pool.acquire() as conn:  # the service's own pool
        assert await conn.fetchval("SELECT current_user") == settings.database_name("referral")
    conn = await asyncpg.connect(settings.service_role_url("referral"))
    try:
        await conn.execute(
            "INSERT INTO access_log (case_ref, user_id, party, role, purpose, outcome)"
            " VALUES ('TS-ROLE', 'u1', 'AF', 'member', 'test', 'granted')"
        )  # adding to the log: allowed
        assert await conn.fetchval("SELECT count(*) FROM access_log WHERE case_ref = 'TS-ROLE'") == 1
        for statement in (
            "UPDATE access_log SET purpose = 'x'",
            "DELETE FROM consent_history",
            "TRUNCATE access_log",
            "DROP TRIGGER access_log_append_only ON access_log",
            "ALTER TABLE access_log DISABLE TRIGGER USER",
            "DELETE FROM schema_migrations",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
    finally:
        await conn.close()
    with pytest.raises(asyncpg.InsufficientPrivilegeError):  # not even a connection to meeting's
        await asyncpg.connect(with_database(settings.service_role_url("referral"), meeting))

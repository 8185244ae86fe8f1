"""Meeting scheduling under load and scale-out, on the real broker and database: a burst to one
team fills meetings strictly by capacity and queue order; two instances at once never
double-book a seat or announce anything twice."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import pytest

from shared.platform.clock import STOCKHOLM
from tests.support import broker as amqp
from tests.support.meetings import ONE_DATES, case_referred, meeting_id, meeting_service

pytestmark = pytest.mark.infra


async def placed_by_meeting(service) -> list[tuple[str, int, list[int]]]:
    rows = await service.fetch(
        """SELECT m.meeting_id, m.capacity, array_agg(c.queue_seq ORDER BY c.queue_seq) AS seqs
           FROM meetings m LEFT JOIN cases c ON c.meeting_id = m.meeting_id AND c.status = 'queued'
           WHERE m.team_id = 'T-ONE' AND m.status <> 'cancelled'
           GROUP BY m.meeting_id, m.capacity, m.meeting_date ORDER BY m.meeting_date"""
    )
    return [(r["meeting_id"], r["capacity"], [s for s in r["seqs"] if s is not None]) for r in rows]


async def outbox_empty(service) -> bool:
    rows = await service.fetch("SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL")
    return rows[0]["n"] == 0


async def test_a_burst_of_1000_referrals_fills_meetings_strictly_by_capacity_and_order(settings, runtimes, tmp_path):
    async with meeting_service(settings, runtimes, tmp_path, meeting_horizon_weeks=52) as service:
        total = 1000
        await service.send(*[case_referred(f"B{i:04}", minute=i) for i in range(total)])

        async def all_queued():
            rows = await service.fetch("SELECT count(*) AS n FROM cases WHERE status = 'queued'")
            return rows[0]["n"] == total

        await amqp.eventually(all_queued, timeout=120, what=f"{total} cases in the queue")
        await amqp.eventually(lambda: outbox_empty(service), timeout=60, what="the outbox to drain")

        meetings = await placed_by_meeting(service)
        assert len(meetings) == 26  # every other week for a year
        seats = sum(capacity for _, capacity, _ in meetings)
        for _, capacity, seqs in meetings:
            assert len(seqs) == capacity  # full, never over
        placed = [seq for _, _, seqs in meetings for seq in seqs]
        everyone = [r["queue_seq"] for r in await service.fetch("SELECT queue_seq FROM cases ORDER BY queue_seq")]
        assert placed == everyone[:seats]  # in queue order, meeting after meeting, no gaps
        waiting = await service.fetch("SELECT count(*) AS n FROM cases WHERE meeting_id IS NULL")
        assert waiting[0]["n"] == total - seats

        await service.tap.wait_for("CaseScheduled", seats, timeout=60)
        scheduled = Counter(e["case_ref"] for e in service.tap.of("CaseScheduled"))
        assert len(scheduled) == seats and set(scheduled.values()) == {1}
        assert service.tap.of("CasePostponed") == []  # arrivals never move anyone


async def test_two_instances_never_double_book_or_announce_twice(settings, runtimes, tmp_path):
    async with meeting_service(settings, runtimes, tmp_path, instances=2) as service:
        total = 300
        # every fourth case lacks FK's consent: postponed at the cut-off. The first three come
        # one by one (so D001 is on the first meeting), the rest in a burst.
        referred = [
            case_referred(
                f"D{i:03}",
                minute=i,
                consented=["AF", "KOMMUN", "REGION"] if i % 4 == 1 else ["AF", "FK", "KOMMUN", "REGION"],
            )
            for i in range(total)
        ]
        await service.queue(*referred[:3])
        await service.send(*referred[3:])

        async def all_queued():
            rows = await service.fetch("SELECT count(*) AS n FROM cases")
            return rows[0]["n"] == total

        await amqp.eventually(all_queued, timeout=60, what=f"{total} cases in the queue")
        handled = [
            sum(s.value for m in r.metrics.consumed.collect() for s in m.samples if s.name.endswith("_total"))
            for r in service.runtimes
        ]
        assert all(n > 0 for n in handled), f"both instances consume: {handled}"
        first = await placed_by_meeting(service)
        assert [len(seqs) for _, _, seqs in first] == [3] * 6

        # both schedulers try to pass the first cut-off; one does it, once
        service.clock.set(datetime(2026, 11, 26, 9, 1, tzinfo=STOCKHOLM))
        await service.until_status(ONE_DATES[0], "closed")
        await amqp.eventually(lambda: outbox_empty(service), timeout=60, what="the outbox to drain")
        lacking = ["D001"]
        for ref in lacking:
            [postponed] = await service.tap.wait_for("CasePostponed", case_ref=ref, reason="consent_missing")
            assert postponed["to_meeting_id"] == meeting_id(ONE_DATES[1])
            await service.tap.wait_for("ConsentReminder", case_ref=ref)
        after = await placed_by_meeting(service)
        assert [len(seqs) for _, _, seqs in after] == [3] * 6  # the freed seat was used
        fixed = await service.fetch("SELECT case_ref FROM cases WHERE meeting_id = $1", meeting_id(ONE_DATES[0]))
        assert all(int(r["case_ref"][1:]) % 4 != 1 for r in fixed)  # all with FK's consent

        events = service.tap.events
        assert len({e["event_id"] for e in events}) == len(events), "an event was published twice"
        per_meeting = Counter(e["payload"]["meeting_id"] for e in events if e["event_type"] == "MeetingScheduled")
        in_db = await service.fetch("SELECT count(*) AS n FROM meetings")
        assert set(per_meeting.values()) == {1} and len(per_meeting) == in_db[0]["n"]
        assert Counter(e["payload"]["team_id"] for e in events if e["event_type"] == "TeamUpdated") == {
            "T-ONE": 1,
            "T-TWO": 1,
        }
        for ref in lacking:
            assert len(service.tap.of("CasePostponed", case_ref=ref)) == 1
            assert len(service.tap.of("ConsentReminder", case_ref=ref)) == 1
        # no case is announced twice for the same meeting in a row
        seen: dict[str, str] = {}
        for e in events:
            if e["event_type"] == "CaseScheduled":
                ref, where = e["payload"]["case_ref"], e["payload"]["meeting_id"]
                assert seen.get(ref) != where, f"{ref} announced twice for {where}"
                seen[ref] = where
        # every case's last announcement is where it is
        where = {
            r["case_ref"]: r["meeting_id"]
            for r in await service.fetch("SELECT case_ref, meeting_id FROM cases WHERE meeting_id IS NOT NULL")
        }
        last = {}
        for e in events:
            if e["event_type"] == "CaseScheduled":
                last[e["payload"]["case_ref"]] = e["payload"]["meeting_id"]
        assert {ref: last.get(ref) for ref in where} == where

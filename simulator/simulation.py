"""The simulation: the four agencies and the teams' coordinators, against a running platform.

- **Agencies** submit referrals over AMQP to the intake, each with its own broker identity,
  read their own reply queue, record consent after a ConsentReminder and answer FollowUpDue
  with RecordFollowUp (all over AMQP, as an agency system does).
- **Coordinators** (REGION's rehab coordinators) use the meeting service's HTTP API with their
  own token: they cancel the odd meeting ahead and, once a meeting has been held, record the
  consultation of each case on its agenda.

Time is the platform's domain time (``shared.platform.clock.Clock`` from the same settings): with a
fast development clock a year of history plays in minutes. Everything is at-least-once and
idempotent on the platform's side, so the simulator retries whatever failed (broker away,
service restarted) and counts what it was answered in its ``Tally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import aio_pika
import httpx
import structlog

from shared.contracts.vocabulary import Party
from shared.platform.auth import mint_token, signing_key
from shared.platform.clock import Clock, stockholm_date
from shared.platform.config import Settings

from .profile import Profile

log = structlog.get_logger("simulator")


@dataclass
class Tally:
    """What the simulator did and what it was answered; sets make redeliveries harmless."""

    counts: Counter = field(default_factory=Counter)
    sent: set[str] = field(default_factory=set)  # agency refs submitted
    accepted: dict[str, str] = field(default_factory=dict)  # agency ref -> case ref
    rejected: set[str] = field(default_factory=set)  # agency refs refused
    consulted: set[str] = field(default_factory=set)  # case refs recorded as held
    not_consulted: set[str] = field(default_factory=set)
    cancelled_meetings: set[str] = field(default_factory=set)
    followups_due: set[str] = field(default_factory=set)  # follow-up ids announced due
    due_events: dict[str, set[str]] = field(default_factory=dict)  # follow-up id -> event ids
    followups_answered: set[str] = field(default_factory=set)  # RecordFollowUp sent
    followups_recorded: set[str] = field(default_factory=set)  # ... and accepted
    consents_recorded: set[str] = field(default_factory=set)
    # when, and by whom: the platform's date of each accepted referral and each consultation
    referred_on: dict[str, date] = field(default_factory=dict)  # case ref -> date accepted
    party_of: dict[str, str] = field(default_factory=dict)  # case ref -> referring party
    consulted_on: dict[str, date] = field(default_factory=dict)  # case ref -> meeting date

    def in_period(self, start: date, end: date) -> dict:
        """What was done in a period: referrals accepted by party, and cases consulted."""
        by_party = Counter(self.party_of[ref] for ref, on in self.referred_on.items() if start <= on <= end)
        return {
            "referred_by_party": {p.value: by_party.get(p.value, 0) for p in Party},
            "consulted": sum(
                1 for ref, on in self.consulted_on.items() if start <= on <= end and ref in self.consulted
            ),
        }

    @property
    def answered(self) -> int:
        return len(self.accepted) + len(self.rejected)

    def summary(self) -> dict:
        return {
            "referrals sent": len(self.sent),
            "accepted": len(self.accepted),
            "rejected": len(self.rejected),
            "consents recorded later": len(self.consents_recorded),
            "meetings cancelled": len(self.cancelled_meetings),
            "consulted": len(self.consulted),
            "not consulted": len(self.not_consulted),
            "follow-ups due": len(self.followups_due),
            "follow-ups answered": len(self.followups_answered),
            "follow-ups recorded": len(self.followups_recorded),
        }


def _command(command: str, payload: dict) -> dict:
    event_id = str(uuid.uuid4())
    return {
        "event_id": event_id,
        "event_type": command,
        "version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "producer": "agency-system",
        "correlation_id": event_id,
        "payload": payload,
    }


class Agency:
    """One agency system: publishes its commands and reads its own reply queue, each on a
    connection of its own that it opens again whenever it is lost (broker restart, cut)."""

    def __init__(self, party: Party, amqp_url: str, user: str, namespace: str):
        self.party, self.amqp_url, self.user, self.namespace = party, amqp_url, user, namespace
        self._publisher: aio_pika.abc.AbstractConnection | None = None
        self._exchange = None
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task | None = None

    async def _intake(self):
        if self._publisher is None or self._publisher.is_closed:
            self._publisher = await aio_pika.connect(self.amqp_url, timeout=10)
            channel = await self._publisher.channel(publisher_confirms=True, on_return_raises=True)
            self._exchange = await channel.get_exchange(f"{self.namespace}.intake", ensure=False)
        return self._exchange

    async def _drop_publisher(self) -> None:
        connection, self._publisher = self._publisher, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    async def send(self, command: dict) -> None:
        """Publish until the broker confirms (a lost confirm means a resend: the intake dedupes)."""
        body = json.dumps(command).encode()
        for attempt in range(1000):
            try:
                async with self._lock:
                    intake = await self._intake()
                    await intake.publish(
                        aio_pika.Message(
                            body,
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            content_type="application/json",
                            user_id=self.user,
                            message_id=command["event_id"],
                            type=command["event_type"],
                        ),
                        routing_key=f"{self.party.value}.{command['event_type']}",
                        mandatory=True,
                        timeout=10,
                    )
                return
            except Exception as exc:  # broker away or connection cut: connect again and resend
                log.warning(
                    "agency publish failed, retrying", party=self.party.value, error=type(exc).__name__, attempt=attempt
                )
                await self._drop_publisher()
                await asyncio.sleep(min(5.0, 0.2 * 2 ** min(attempt, 5)))
        raise RuntimeError(f"{self.party.value}: could not publish {command['event_type']}")

    def read_replies(self, on_reply: Callable[[Agency, dict], Awaitable[None]]) -> None:
        self._reader = asyncio.create_task(self._read(on_reply), name=f"replies-{self.party.value}")

    async def _read(self, on_reply) -> None:
        failures = 0
        while True:
            try:
                async with await aio_pika.connect(self.amqp_url, timeout=10) as connection:
                    channel = await connection.channel()
                    await channel.set_qos(prefetch_count=50)
                    queue = await channel.get_queue(f"{self.namespace}.agency.{self.party.value}", ensure=False)
                    failures = 0
                    async with queue.iterator() as messages:
                        while not channel.is_closed:
                            try:  # (not wait_for: it can lose a cancellation in 3.11)
                                async with asyncio.timeout(2):
                                    message = await messages.__anext__()
                            except TimeoutError:
                                continue  # nothing new; is the channel still there?
                            except StopAsyncIteration:
                                break
                            await self._handle(message, on_reply)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                log.warning("agency reply queue lost, reading again", party=self.party.value, error=type(exc).__name__)
                await asyncio.sleep(min(5.0, 0.5 * failures))

    async def _handle(self, message, on_reply) -> None:
        try:
            await on_reply(self, json.loads(message.body))
        except Exception as exc:  # keep it for a later try rather than lose it
            log.warning("agency could not handle a reply", error=type(exc).__name__)
            await asyncio.sleep(0.5)
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
            return
        with contextlib.suppress(Exception):
            await message.ack()

    async def close(self) -> None:
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self._drop_publisher()


class Simulation:
    def __init__(
        self,
        settings: Settings,
        *,
        agencies: dict[Party, tuple[str, str]],
        meeting_urls: list[str],
        teams: list[str],
        profile: Profile | None = None,
        seed: int = 1,
        clock: Clock | None = None,
    ):
        """``agencies``: party -> (AMQP URL that logs in as the agency, its broker user)."""
        self.settings = settings
        self.profile = profile or Profile()
        self.rng = random.Random(seed)
        self.clock = clock or Clock.from_settings(settings)
        self.teams = teams
        self.meeting_urls = meeting_urls
        self.agencies = {party: Agency(party, url, user, settings.namespace) for party, (url, user) in agencies.items()}
        self.tally = Tally()
        self._used: set[str] = set()
        self._decided: set[str] = set()  # meetings whose cancellation was decided
        self._coordinator: asyncio.Task | None = None
        self._auth = {
            "Authorization": "Bearer "
            + mint_token(
                signing_key(settings),
                user_id="sim-coordinator",
                party="REGION",
                role="coordinator",
                teams=list(teams),
            )
        }
        self._followup_commands: dict[str, str] = {}  # RecordFollowUp id -> follow-up id

    def today(self) -> date:
        return stockholm_date(self.clock.now())

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        for agency in self.agencies.values():
            agency.read_replies(self._on_reply)
        self._coordinator = asyncio.create_task(self._coordinate())

    async def stop_coordinating(self) -> None:
        """The coordinators stop recording; a last look at the agendas counts every outcome
        recorded (also one whose HTTP answer was lost). The agencies go on answering."""
        self._coordinator.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._coordinator
        async with httpx.AsyncClient(timeout=30, headers=self._auth) as client:
            for team_id in self.teams:
                for _attempt in range(20):
                    try:
                        await self._coordinate_team(client, team_id, weeks_back=52, record=False)
                        break
                    except (httpx.HTTPError, OSError):
                        await asyncio.sleep(0.5)

    async def answered(self, timeout: float = 30.0) -> bool:
        """Wait until every referral sent has its answer (the agencies go on reading their
        replies); False if some are still unanswered after ``timeout`` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.tally.answered < len(self.tally.sent):
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.2)
        return True

    async def stop(self) -> None:
        if self._coordinator:
            self._coordinator.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._coordinator
        for agency in self.agencies.values():
            await agency.close()

    # ------------------------------------------------------------------ agencies

    async def refer(
        self, n: int, *, per_second: float | None = None, progress: Callable[[int], None] = lambda sent: None
    ) -> None:
        """Submit ``n`` referrals: at ``per_second`` real seconds, or at the profile's weekly
        rate in the platform's (possibly fast) time."""
        sent, owed, last = 0, 0.0, self.clock.now()
        while sent < n:
            await asyncio.sleep(0.05)
            now = self.clock.now()
            if per_second:
                owed += per_second * 0.05
            else:
                owed += self.profile.referrals_per_week * (now - last) / timedelta(weeks=1)
            last = now
            batch = min(n - sent, int(owed))
            owed -= batch
            await asyncio.gather(*(self.refer_one(sent + i) for i in range(batch)))
            sent += batch
            progress(sent)

    async def refer_one(self, i: int) -> None:
        party = self.profile.referring_party(self.rng)
        agency_ref = f"SIM-{self.settings.namespace}-{i}"
        payload = self.profile.referral(
            self.rng,
            agency_ref=agency_ref,
            team_id=self.teams[self.rng.randrange(len(self.teams))],
            today=self.today(),
            used=self._used,
        )
        self.tally.sent.add(agency_ref)
        try:
            await self.agencies[party].send(_command("SubmitReferral", payload))
        except Exception:
            self.tally.sent.discard(agency_ref)  # not sent (cancelled mid-send, it may have been)
            raise

    async def _on_reply(self, agency: Agency, message: dict) -> None:
        kind, payload = message.get("event_type"), message.get("payload", {})
        self.tally.counts[kind] += 1
        if kind == "ReferralAccepted":
            self.tally.accepted[payload["agency_ref"]] = payload["case_ref"]
            self.tally.referred_on[payload["case_ref"]] = stockholm_date(datetime.fromisoformat(payload["accepted_at"]))
            self.tally.party_of[payload["case_ref"]] = agency.party.value
        elif kind == "ReferralRejected":
            self.tally.rejected.add(payload.get("agency_ref"))
        elif kind == "ConsentReminder":
            case_ref = payload["case_ref"]
            if (
                case_ref not in self.tally.consents_recorded
                and self.rng.random() < self.profile.consent_given_after_reminder
            ):
                self.tally.consents_recorded.add(case_ref)
                for party in payload["missing_parties"]:
                    await agency.send(
                        _command(
                            "RecordConsent",
                            {
                                "case_ref": case_ref,
                                "party": party,
                                "given_on": str(self.today()),
                                "form_ref": f"SAMTYCKE-{case_ref}",
                            },
                        )
                    )
        elif kind == "FollowUpDue":
            followup_id = payload["followup_id"]
            self.tally.followups_due.add(followup_id)
            self.tally.due_events.setdefault(followup_id, set()).add(message.get("event_id"))
            if followup_id in self.tally.followups_answered:
                return
            answers = self.profile.followup_answers(self.rng, kind=payload["kind"], today=self.today())
            if answers is not None:
                self.tally.followups_answered.add(followup_id)
                command = _command(
                    "RecordFollowUp", {"case_ref": payload["case_ref"], "kind": payload["kind"], **answers}
                )
                self._followup_commands[command["event_id"]] = followup_id
                await agency.send(command)
        elif kind == "CommandAccepted" and payload.get("command_id") in self._followup_commands:
            self.tally.followups_recorded.add(self._followup_commands[payload["command_id"]])

    # ------------------------------------------------------------------ coordinators

    async def _coordinate(self) -> None:
        async with httpx.AsyncClient(timeout=10, headers=self._auth) as client:
            while True:
                for team_id in self.teams:
                    with contextlib.suppress(httpx.HTTPError, OSError):
                        await self._coordinate_team(client, team_id)
                await asyncio.sleep(0.2)

    async def _http(self, client: httpx.AsyncClient, method: str, path: str, **kwargs) -> httpx.Response:
        """Any instance of the meeting service will do; try the next when one is away."""
        error: Exception | None = None
        for base in self.meeting_urls:
            try:
                return await client.request(method, base + path, **kwargs)
            except httpx.HTTPError as exc:
                error = exc
        raise error or httpx.ConnectError("no meeting service")

    async def _coordinate_team(
        self, client: httpx.AsyncClient, team_id: str, *, weeks_back: int = 8, record: bool = True
    ) -> None:
        today = self.today()
        answer = await self._http(
            client,
            "GET",
            f"/api/v1/teams/{team_id}/meetings",
            params={"since": str(today - timedelta(weeks=weeks_back)), "weeks": min(52, weeks_back + 2)},
        )
        if answer.status_code != 200:
            return
        for meeting in answer.json()["meetings"]:
            on = date.fromisoformat(meeting["meeting_date"])
            if meeting["status"] == "cancelled":
                continue
            if not record:
                self._count_outcomes(meeting)
                continue
            if today < on <= today + timedelta(days=7) and meeting["meeting_id"] not in self._decided:
                self._decided.add(meeting["meeting_id"])
                if self.rng.random() < self.profile.cancellations:
                    cancelled = await self._http(
                        client,
                        "POST",
                        f"/api/v1/meetings/{meeting['meeting_id']}/cancellation",
                        json={"reason": "staff_absent"},
                    )
                    if cancelled.status_code in (200, 201):
                        self.tally.cancelled_meetings.add(meeting["meeting_id"])
                continue
            if on > today or meeting["status"] == "open":
                continue
            self._count_outcomes(meeting)
            for case in meeting["agenda"]:
                if case["status"] != "queued" or case["outcome"]:
                    continue
                record = self.profile.consultation(self.rng, held_on=on)
                recorded = await self._http(
                    client,
                    "POST",
                    f"/api/v1/meetings/{meeting['meeting_id']}/cases/{case['case_ref']}/consultation",
                    json=record,
                )
                self.tally.counts[f"consultation {recorded.status_code}"] += 1
                if recorded.status_code in (200, 201):
                    (self.tally.consulted if record["outcome"] == "held" else self.tally.not_consulted).add(
                        case["case_ref"]
                    )
                    self.tally.consulted_on[case["case_ref"]] = on

    def _count_outcomes(self, meeting: dict) -> None:
        """Outcomes on the agenda count, also when the answer to our record was lost."""
        for case in meeting["agenda"]:
            if case["outcome"] == "held":
                self.tally.consulted.add(case["case_ref"])
                self.tally.consulted_on[case["case_ref"]] = date.fromisoformat(meeting["meeting_date"])
            elif case["outcome"] == "not_consulted":
                self.tally.not_consulted.add(case["case_ref"])

"""The referral use cases on the in-memory unit of work (tests/fakes/referral.py): intake over
AMQP and HTTP (acceptance, every kind of rejection, resubmissions), consent recorded, withdrawn
and refused, the audited read of a case's personal data, closure and erasure after retention.
No servers: each rule as the service applies it, in milliseconds."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.referral import use_cases
from services.referral.domain import Accepted, Refusal, Rejected, Submission
from services.referral.handlers import handlers
from services.referral.routes import submission_from
from services.referral.use_cases import CaseDetails
from services.referral.vault import Keyring
from shared.contracts import (
    CaseClosed,
    CaseReferred,
    CommandAccepted,
    CommandRejected,
    ConsentRecorded,
    ConsentWithdrawn,
    RecordConsent,
    ReferralAccepted,
    ReferralRejected,
    SubmitReferral,
    TeamUpdated,
    WithdrawConsent,
    envelope_for,
)
from shared.contracts.vocabulary import AgeBand, ExitReason, Gender, HostUnit, Party
from shared.platform.auth import Principal, Role
from shared.platform.clock import SettableClock
from shared.platform.retention import retention_cutoff
from shared.platform.uow import Message
from tests.fakes.referral import TEST_KEYS, FakeReferralUnitOfWork, dependencies
from tests.support.identities import generated_personnummer

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TODAY = date(2026, 12, 1)
TEAM = "GAVLE-BRYNAS"  # a team of deploy/teams.json, in Gävle
PERSON = generated_personnummer(date(1980, 5, 17))  # a man of 46
OTHER_PERSON = generated_personnummer(date(1991, 2, 3), woman=True)


def payload(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "agency_ref": "AF-2026-001",
        "personnummer": PERSON,
        "team_id": TEAM,
        "question": "Vilket stöd behövs för att komma närmare arbete?",
        "purpose": "Planering",
        "consents": [{"party": p, "given_on": "2026-11-02", "form_ref": "F-1"} for p in ("AF", "REGION")],
        "wishes_to_attend": True,
        "income_source": "SJUKPENNING",
        "reason_codes": ["SJUKSKRIVEN_MED_INTYG"],
        "violence_question_asked": True,
        "officer_id": "officer-17",
    }
    body.update(overrides)
    return body


def command(**overrides: Any) -> SubmitReferral:
    return SubmitReferral.model_validate(payload(**overrides))


def caller(party: str, role: str, teams: tuple[str, ...] = (TEAM,), user: str = "u-1") -> Principal:
    return Principal(user_id=user, party=Party(party), role=Role(role), teams=frozenset(teams))


def drain(uow: FakeReferralUnitOfWork) -> list:
    """The events emitted so far, forgotten: the next assertions see only what follows."""
    events = list(uow.events)
    uow.events.clear()
    uow.ordering_keys.clear()
    uow.emitted.clear()
    return events


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(NOW)


@pytest.fixture
def uow(clock: SettableClock) -> FakeReferralUnitOfWork:
    return FakeReferralUnitOfWork(dependencies(clock, retention_days=30))


async def submit(
    uow: FakeReferralUnitOfWork, party: Party = Party.AF, channel: str = "amqp", **overrides: Any
) -> Accepted | Rejected:
    return await use_cases.submit_referral(
        uow, party=party, submission=Submission(command(**overrides)), channel=channel
    )


async def new_case(uow: FakeReferralUnitOfWork, **overrides: Any) -> str:
    accepted = await submit(uow, **overrides)
    assert isinstance(accepted, Accepted), accepted
    drain(uow)
    return accepted.case_ref


def codes(outcome: Accepted | Rejected) -> list[str]:
    assert isinstance(outcome, Rejected), outcome
    return [p.code for p in outcome.problems]


# --------------------------------------------------------------------------- intake


async def test_an_accepted_referral_becomes_a_case_announced_without_personal_data(uow):
    accepted = await submit(uow)
    assert isinstance(accepted, Accepted) and not accepted.replay
    assert accepted.case_ref.startswith("TS-") and accepted.accepted_at == NOW
    [referred] = uow.events
    assert isinstance(referred, CaseReferred) and uow.ordering_keys == [accepted.case_ref]
    assert (referred.team_id, referred.municipality, referred.referring_party) == (TEAM, "Gävle", Party.AF)
    assert (referred.gender, referred.age_band) == (Gender.MAN, AgeBand.A45_54)
    assert referred.consented_parties == (Party.AF, Party.REGION)
    assert PERSON.replace("-", "") not in referred.model_dump_json()
    case = uow.cases.rows[accepted.case_ref]
    assert case.person_pseudonym is not None and case.closed_at is None
    sealed = uow.vault.rows[accepted.case_ref].fields
    assert set(sealed) == {"personnummer", "question", "purpose"}
    assert all(PERSON.replace("-", "").encode() not in s.blob for s in sealed.values())
    assert [(c.party, c.action, c.recorded_by) for c in uow.consents.rows] == [
        (Party.AF, "given", Party.AF),
        (Party.REGION, "given", Party.AF),
    ]
    assert uow.rejections.rows == []


async def test_protected_identity_makes_a_case_without_identity(uow):
    accepted = await submit(uow, personnummer=None, protected_identity=True)
    assert isinstance(accepted, Accepted)
    [referred] = uow.events
    assert (referred.gender, referred.age_band) == (Gender.UNKNOWN, AgeBand.UNKNOWN)
    assert set(uow.vault.rows[accepted.case_ref].fields) == {"question", "purpose"}
    assert uow.cases.rows[accepted.case_ref].person_pseudonym is None


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"personnummer": PERSON[:-1] + str((int(PERSON[-1]) + 1) % 10)}, ["personnummer_check_digit"]),
        ({"personnummer": "1980-05-17"}, ["personnummer_format"]),
        ({"personnummer": "19800230-9810"}, ["personnummer_birth_date"]),
        ({"personnummer": generated_personnummer(date(2011, 1, 1))}, ["age_out_of_range"]),
        ({"personnummer": None}, ["identity_missing"]),
        ({"protected_identity": True}, ["identity_with_protected_flag"]),
        ({"team_id": "NO-SUCH-TEAM"}, ["unknown_team"]),
        ({"question": "   "}, ["question_empty"]),
        ({"consents": []}, ["consent_missing"]),
        ({"consents": [{"party": "FK", "given_on": "2026-12-02", "form_ref": "F"}]}, ["consent_in_future"]),
        ({"consents": [{"party": "FK", "given_on": "2026-11-02", "form_ref": "F"}] * 2}, ["consent_duplicate_party"]),
        (
            {"team_id": "NO-SUCH-TEAM", "question": " ", "personnummer": None},
            ["identity_missing", "unknown_team", "question_empty"],
        ),  # every problem at once
    ],
)
async def test_each_rule_rejects_and_the_rejection_is_kept(uow, overrides, expected):
    rejected = await submit(uow, **overrides)
    assert codes(rejected) == expected
    assert uow.events == [] and uow.cases.rows == {} and uow.vault.rows == {}
    [kept] = await use_cases.rejections_of(uow, Party.AF)
    assert [r["code"] for r in kept.reasons] == expected and kept.channel == "amqp"
    assert all(r["message_sv"] and r["message_en"] for r in kept.reasons)
    assert PERSON not in json.dumps(kept.reasons)
    assert await use_cases.rejections_of(uow, Party.FK) == []


async def test_a_payload_that_broke_its_contract_is_checked_as_far_as_it_can_be(uow):
    raw = payload(team_id="NO-SUCH-TEAM", favourite_colour="blue")
    submission = Submission(None, raw=raw, schema_errors=({"loc": ("favourite_colour",), "type": "extra_forbidden"},))
    rejected = await use_cases.submit_referral(uow, party=Party.AF, submission=submission, channel="amqp")
    assert codes(rejected) == ["unknown_field", "unknown_team"]
    assert isinstance(rejected, Rejected) and rejected.agency_ref == "AF-2026-001"


async def test_an_oversized_http_body_is_only_too_large(uow):
    body = json.dumps(payload(question="x" * 70_000)).encode()
    submission = submission_from(body)
    assert isinstance(submission, Submission) and submission.raw is None
    rejected = await use_cases.submit_referral(uow, party=Party.AF, submission=submission, channel="http")
    assert codes(rejected) == ["payload_too_large"]  # not identity_missing beside it: it was not read
    assert isinstance(rejected, Rejected) and rejected.agency_ref is None


def test_an_http_body_that_is_no_json_object_or_not_storable_is_a_problem_not_a_submission():
    assert submission_from(b"[1, 2]").code == "invalid_value"
    assert submission_from(b"{not json").code == "invalid_value"
    assert submission_from(json.dumps(payload(officer_id="o\u0000")).encode()).field == "officer_id"
    assert isinstance(submission_from(json.dumps(payload()).encode()), Submission)


async def test_a_person_with_an_open_case_is_not_referred_again_until_it_is_closed(uow, clock):
    case_ref = await new_case(uow)
    assert codes(await submit(uow, Party.FK, agency_ref="FK-1")) == ["duplicate_open_case"]
    await use_cases.close_case(uow, CaseClosed(case_ref=case_ref, reason=ExitReason.PLAN_COMPLETED, closed_at=NOW))
    assert isinstance(await submit(uow, Party.FK, agency_ref="FK-2"), Accepted)


async def test_the_same_referral_again_gets_the_same_answer(uow, clock):
    first = await submit(uow)
    drain(uow)
    clock.advance(minutes=5)
    again = await submit(uow)
    assert isinstance(first, Accepted) and isinstance(again, Accepted) and again.replay
    assert (again.case_ref, again.accepted_at) == (first.case_ref, first.accepted_at)
    assert uow.events == [] and len(uow.cases.rows) == 1 and uow.rejections.rows == []


async def test_another_referral_under_a_used_agency_reference_is_refused(uow):
    await new_case(uow)
    assert codes(await submit(uow, personnummer=OTHER_PERSON)) == ["agency_ref_reused"]
    assert codes(await submit(uow, team_id="GAVLE-SATRA")) == ["agency_ref_reused"]
    assert len(uow.cases.rows) == 1 and len(uow.rejections.rows) == 2
    # another agency may use the same reference for its own referral
    assert isinstance(await submit(uow, Party.FK, personnummer=OTHER_PERSON), Accepted)


async def test_a_concurrent_submission_that_wins_the_insert_gives_the_same_answer(uow):
    """The facts were loaded before the other submission committed; the unique index refuses
    the case, and the use case decides again on the facts as they are now."""
    winner = await submit(uow)
    assert isinstance(winner, Accepted)
    drain(uow)
    real_accepted_for = uow.cases.accepted_for
    looked_up = []

    async def not_yet_committed(party: Party, agency_ref: str):
        looked_up.append(agency_ref)
        return None if len(looked_up) == 1 else await real_accepted_for(party, agency_ref)

    uow.cases.accepted_for = not_yet_committed
    uow.cases.has_open_case = lambda pseudonym: _false()
    again = await submit(uow)
    assert isinstance(again, Accepted) and again.replay and again.case_ref == winner.case_ref
    assert uow.events == [] and len(uow.cases.rows) == 1 and len(looked_up) == 2

    loser = await submit(uow, agency_ref="AF-2026-002")  # the same person under another reference
    assert codes(loser) == ["duplicate_open_case"]


async def _false() -> bool:
    return False


async def test_a_team_announced_later_is_accepted_and_its_newest_revision_counts(uow):
    def update(municipality: str, revision: int) -> TeamUpdated:
        return TeamUpdated(
            team_id="NEW-TEAM",
            team_name="Ny",
            municipality=municipality,
            host_unit_type=HostUnit.HEALTH_CENTRE,
            host_unit_name="Ny hc",
            cadence_weeks=2,
            weekday=1,
            meeting_time="09:00",
            capacity=4,
            cutoff_days=5,
            fixed_parties=tuple(Party),
            revision=revision,
            updated_at=NOW,
        )

    assert codes(await submit(uow, team_id="NEW-TEAM")) == ["unknown_team"]
    await use_cases.register_team(uow, update("Sandviken", 2))
    await use_cases.register_team(uow, update("Hofors", 1))  # older, late: changes nothing
    accepted = await submit(uow, team_id="NEW-TEAM", agency_ref="AF-2026-002")
    assert isinstance(accepted, Accepted)
    assert uow.of_type(CaseReferred)[0].municipality == "Sandviken"


# --------------------------------------------------------------------------- the AMQP handlers


def delivery(contract, party: str = "AF") -> Message:
    return Message(
        envelope_for(contract, producer="agency-system"),
        routing_key=f"{party}.{contract.name}",
        user_id=f"trisam-{party.lower()}",
    )


async def test_the_submitting_agency_alone_gets_the_answer_over_amqp():
    accepted_uow = FakeReferralUnitOfWork(message=delivery(command()))
    await handlers.get(SubmitReferral)(command(), accepted_uow)
    [reply] = accepted_uow.of_type(ReferralAccepted)
    assert reply.recipient == Party.AF and reply.agency_ref == "AF-2026-001"

    rejected_uow = FakeReferralUnitOfWork(message=delivery(command(team_id="NOPE"), "FK"))
    await handlers.get(SubmitReferral)(command(team_id="NOPE"), rejected_uow)
    [refusal] = rejected_uow.of_type(ReferralRejected)
    assert refusal.recipient == Party.FK and [r.code for r in refusal.reasons] == ["unknown_team"]


async def test_consent_commands_are_answered_over_amqp(uow):
    case_ref = await new_case(uow)
    record = RecordConsent(case_ref=case_ref, party=Party.FK, given_on=TODAY, form_ref="F-2")
    uow.message = delivery(record)
    await handlers.get(RecordConsent)(record, uow)
    assert [type(e) for e in drain(uow)] == [ConsentRecorded, CommandAccepted]
    unknown = WithdrawConsent(case_ref="TS-AAAAAAAAAAAAAAAA", party=Party.FK, withdrawn_on=TODAY)
    uow.message = delivery(unknown)
    await handlers.get(WithdrawConsent)(unknown, uow)
    [rejected] = drain(uow)
    assert isinstance(rejected, CommandRejected) and [r.code for r in rejected.reasons] == ["case_not_found"]


# --------------------------------------------------------------------------- consent


WITNESS = {"name": "Anna Berg", "role": "handläggare"}


@pytest.mark.parametrize(
    "source,expected",
    [
        ({"form_ref": "F-2"}, []),  # as before: a signed form, its source implied
        ({"source": "signed_form", "form_ref": "F-2"}, []),
        ({"source": "verbal", "witness": WITNESS}, []),
        ({}, ["consent_source_missing"]),
        ({"source": "signed_form"}, ["form_ref_missing"]),
        ({"form_ref": "F-2", "witness": WITNESS}, ["witness_with_signed_form"]),
        ({"source": "verbal"}, ["witness_missing"]),
        ({"source": "verbal", "form_ref": "F-2", "witness": WITNESS}, ["form_ref_with_verbal"]),
        ({"source": "verbal", "witness": {"name": " ", "role": "kurator"}}, ["witness_missing"]),
        ({"source": "verbal", "witness": {"name": f"Anna {PERSON}", "role": "x"}}, ["witness_holds_identity"]),
    ],
)
async def test_a_consent_is_given_on_a_signed_form_or_verbally_before_a_witness(uow, source, expected):
    case_ref = await new_case(uow)
    command = RecordConsent.model_validate({"case_ref": case_ref, "party": "FK", "given_on": str(TODAY), **source})
    problems = await use_cases.record_consent(uow, by_user="fk-officer-2", by=Party.FK, command=command)
    assert [p.code for p in problems] == expected
    assert all(PERSON not in p.message_en + p.message_sv for p in problems)
    if not expected:
        kept = uow.consents.rows[-1]
        assert kept.source == ("verbal" if "witness" in source else "signed_form")
        assert (kept.witness.model_dump() if kept.witness else None) == (WITNESS if "witness" in source else None)
        assert kept.recorded_by_user == "fk-officer-2"  # the recorder, beside the witness


async def test_the_consents_of_a_referral_have_a_source_checked_each(uow):
    consents = [
        {"party": "AF", "given_on": "2026-11-02", "source": "verbal", "witness": WITNESS},
        {"party": "FK", "given_on": "2026-11-02", "source": "verbal"},
        {"party": "REGION", "given_on": "2026-11-02"},
    ]
    rejected = await submit(uow, consents=consents)
    assert [(p.code, p.field) for p in rejected.problems] == [
        ("witness_missing", "consents.1.witness"),
        ("consent_source_missing", "consents.2.source"),
    ]
    accepted = await use_cases.submit_referral(
        uow, party=Party.AF, submission=Submission(command(consents=consents[:1])), channel="http", by_user="af-7"
    )
    assert isinstance(accepted, Accepted)
    [given] = uow.consents.rows
    assert (given.source, given.witness.name, given.recorded_by_user) == ("verbal", "Anna Berg", "af-7")


async def test_a_person_refers_only_to_their_own_teams_an_agency_system_to_any(uow):
    other = await use_cases.submit_referral(
        uow,
        party=Party.AF,
        submission=Submission(command()),
        channel="http",
        by_user="af-7",
        person_teams=frozenset({"SANDVIKEN-NORRA"}),
    )
    assert codes(other) == ["not_your_team"]
    own = await use_cases.submit_referral(
        uow,
        party=Party.AF,
        submission=Submission(command()),
        channel="http",
        by_user="af-7",
        person_teams=frozenset({TEAM}),
    )
    assert isinstance(own, Accepted)
    assert isinstance(await submit(uow, agency_ref="AF-2026-009", personnummer=OTHER_PERSON), Accepted)  # AMQP


async def test_consent_is_recorded_and_announced(uow):
    case_ref = await new_case(uow)
    problems = await use_cases.record_consent(
        uow,
        by_user="officer-1",
        by=Party.FK,
        command=RecordConsent(case_ref=case_ref, party=Party.FK, given_on=TODAY, form_ref="F-2"),
    )
    assert problems == []
    [recorded] = uow.events
    assert isinstance(recorded, ConsentRecorded) and (recorded.party, recorded.recorded_by) == (Party.FK, Party.FK)
    assert uow.consents.rows[-1].action == "given" and uow.consents.rows[-1].form_ref == "F-2"
    assert uow.consents.rows[-1].recorded_by_user == "officer-1"  # who, not only which party


async def test_consent_is_withdrawn_and_every_service_is_told(uow):
    case_ref = await new_case(uow)
    problems = await use_cases.withdraw_consent(
        uow,
        by_user="officer-1",
        by=Party.AF,
        command=WithdrawConsent(
            case_ref=case_ref, party=Party.REGION, withdrawn_on=TODAY, on_behalf_of_individual=True
        ),
    )
    assert problems == []
    [withdrawn] = uow.events
    assert isinstance(withdrawn, ConsentWithdrawn) and withdrawn.on_behalf_of_individual
    assert uow.ordering_keys == [case_ref]
    assert (uow.consents.rows[-1].party, uow.consents.rows[-1].action) == (Party.REGION, "withdrawn")


@pytest.mark.parametrize(
    "by, party, given_on, expected",
    [
        (Party.FK, Party.KOMMUN, TODAY, ["not_allowed"]),  # not the referring party, not its own
        (Party.AF, Party.FK, TODAY + timedelta(days=1), ["date_in_future"]),
        (Party.AF, Party.REGION, date(2026, 11, 20), ["consent_before_withdrawal"]),
    ],
)
async def test_a_consent_change_may_be_refused(uow, by, party, given_on, expected):
    case_ref = await new_case(uow)
    await use_cases.withdraw_consent(
        uow,
        by_user="officer-1",
        by=Party.AF,
        command=WithdrawConsent(case_ref=case_ref, party=Party.REGION, withdrawn_on=date(2026, 11, 25)),
    )
    drain(uow)
    problems = await use_cases.record_consent(
        uow,
        by_user="officer-1",
        by=by,
        command=RecordConsent(case_ref=case_ref, party=party, given_on=given_on, form_ref="F"),
    )
    assert [p.code for p in problems] == expected and uow.events == []


async def test_consent_for_an_unknown_or_closed_case(uow):
    unknown = RecordConsent(case_ref="TS-NONE", party=Party.AF, given_on=TODAY, form_ref="F")
    assert [p.code for p in await use_cases.record_consent(uow, by_user="officer-1", by=Party.AF, command=unknown)] == [
        "case_not_found"
    ]
    case_ref = await new_case(uow)
    await use_cases.close_case(uow, CaseClosed(case_ref=case_ref, reason=ExitReason.PLAN_COMPLETED, closed_at=NOW))
    given = RecordConsent(case_ref=case_ref, party=Party.FK, given_on=TODAY, form_ref="F")
    assert [p.code for p in await use_cases.record_consent(uow, by_user="officer-1", by=Party.AF, command=given)] == [
        "case_closed"
    ]
    # a withdrawal is still recorded on a closed case (its personal data stays until erased)
    withdrawal = WithdrawConsent(case_ref=case_ref, party=Party.AF, withdrawn_on=TODAY)
    assert await use_cases.withdraw_consent(uow, by_user="officer-1", by=Party.AF, command=withdrawal) == []


async def test_a_person_records_consent_only_on_their_teams_cases_an_agency_system_on_any(uow):
    """Officers are scoped to their teams when they give consent (it opens access); a withdrawal
    is not (it never does, and the individual may ask any officer of the party)."""
    case_ref = await new_case(uow)
    given = RecordConsent(case_ref=case_ref, party=Party.FK, given_on=TODAY, form_ref="F")
    elsewhere = await use_cases.record_consent(
        uow, by_user="af-1", by=Party.AF, command=given, person_teams=frozenset({"SANDVIKEN-JARBO"})
    )
    assert [p.code for p in elsewhere] == ["not_in_team"]
    assert (
        await use_cases.record_consent(uow, by_user="af-2", by=Party.AF, command=given, person_teams=frozenset({TEAM}))
        == []
    )
    assert await use_cases.record_consent(uow, by_user="trisam-af", by=Party.AF, command=given) == []  # the system
    withdrawal = WithdrawConsent(case_ref=case_ref, party=Party.AF, withdrawn_on=TODAY)
    assert (
        await use_cases.withdraw_consent(
            uow, by_user="af-1", by=Party.AF, command=withdrawal, person_teams=frozenset({"SANDVIKEN-JARBO"})
        )
        == []
    )


async def test_the_teams_coordinator_may_change_any_partys_consent(uow):
    case_ref = await new_case(uow)
    withdrawal = WithdrawConsent(case_ref=case_ref, party=Party.AF, withdrawn_on=TODAY)
    refused = await use_cases.withdraw_consent(uow, by_user="officer-1", by=Party.REGION, command=withdrawal)
    assert [p.code for p in refused] == ["not_allowed"]
    assert (
        await use_cases.withdraw_consent(
            uow, by_user="officer-1", by=Party.REGION, command=withdrawal, coordinator_of=frozenset({TEAM})
        )
        == []
    )


# --------------------------------------------------------------------------- reads of personal data


async def read(
    uow: FakeReferralUnitOfWork, case_ref: str, principal: Principal, purpose: str = "förmöte"
) -> CaseDetails | Refusal:
    return await use_cases.read_case_details(uow, principal, case_ref, purpose)


async def test_a_team_member_whose_party_has_consent_reads_the_details_and_the_read_is_logged(uow):
    case_ref = await new_case(uow)
    details = await read(uow, case_ref, caller("REGION", "member", user="rk-1"))
    assert isinstance(details, CaseDetails) and details.erased_at is None
    assert details.personal == {
        "personnummer": PERSON.replace("-", ""),
        "question": "Vilket stöd behövs för att komma närmare arbete?",
        "purpose": "Planering",
    }
    assert PERSON.replace("-", "") not in repr(details)
    [entry] = uow.access_log.rows
    assert (entry.case_ref, entry.user_id, entry.party, entry.role, entry.purpose, entry.outcome, entry.reason) == (
        case_ref,
        "rk-1",
        Party.REGION,
        "member",
        "förmöte",
        "granted",
        None,
    )


async def test_a_coordinator_who_records_another_partys_consent_gains_no_read_from_it(uow):
    """No self-granted access: the coordinator (REGION) records FK's consent on the team's case;
    the coordinator still reads only on REGION's consent (none here), while FK's member now may."""
    case_ref = await new_case(uow, consents=[{"party": "AF", "given_on": "2026-11-02", "form_ref": "F-1"}])
    coordinator = caller("REGION", "coordinator", user="rk-1")
    given = RecordConsent(case_ref=case_ref, party=Party.FK, given_on=TODAY, form_ref="F-2")
    assert (
        await use_cases.record_consent(
            uow, by_user="rk-1", by=Party.REGION, command=given, coordinator_of=frozenset({TEAM})
        )
        == []
    )
    refused = await read(uow, case_ref, coordinator)
    assert isinstance(refused, Refusal) and refused.code == "no_consent"
    assert isinstance(await read(uow, case_ref, caller("FK", "member", user="fk-1")), CaseDetails)
    assert [(e.user_id, e.outcome) for e in uow.access_log.rows] == [("rk-1", "denied"), ("fk-1", "granted")]


@pytest.mark.parametrize(
    "principal, code",
    [
        (caller("FK", "member"), "no_consent"),
        (caller("REGION", "member", teams=("SANDVIKEN-JARBO",)), "not_in_team"),
        (caller("AF", "officer"), "role_not_allowed"),
    ],
)
async def test_a_refused_read_is_logged_too(uow, principal, code):
    case_ref = await new_case(uow)
    refusal = await read(uow, case_ref, principal)
    assert isinstance(refusal, Refusal) and refusal.code == code and refusal.message
    [entry] = uow.access_log.rows
    assert (entry.outcome, entry.reason) == ("denied", code)


async def test_a_withdrawn_consent_stops_reads_and_a_consent_given_again_allows_them(uow):
    case_ref = await new_case(uow)
    region = caller("REGION", "member")
    await use_cases.withdraw_consent(
        uow,
        by_user="officer-1",
        by=Party.AF,
        command=WithdrawConsent(case_ref=case_ref, party=Party.REGION, withdrawn_on=TODAY),
    )
    assert isinstance(await read(uow, case_ref, region), Refusal)
    await use_cases.record_consent(
        uow,
        by_user="officer-1",
        by=Party.AF,
        command=RecordConsent(case_ref=case_ref, party=Party.REGION, given_on=TODAY, form_ref="F-3"),
    )
    assert isinstance(await read(uow, case_ref, region), CaseDetails)
    assert [e.outcome for e in uow.access_log.rows] == ["denied", "granted"]


async def test_no_log_entry_without_a_case_or_with_a_number_in_the_purpose(uow):
    case_ref = await new_case(uow)
    region = caller("REGION", "member")
    assert (await read(uow, "TS-NONE", region)).code == "case_not_found"
    assert (await read(uow, case_ref, region, purpose=f"läser om {OTHER_PERSON}")).code == "purpose_holds_identity"
    assert uow.access_log.rows == []


async def test_the_consent_history_and_the_access_log_are_read_by_whom_they_may_be(uow):
    case_ref = await new_case(uow)
    await read(uow, case_ref, caller("REGION", "member"))
    history = await use_cases.consent_history(uow, caller("FK", "member"), case_ref)
    assert not isinstance(history, Refusal) and [c.party for c in history[1]] == [Party.AF, Party.REGION]
    refused = await use_cases.consent_history(uow, caller("AF", "officer", teams=()), case_ref)
    assert isinstance(refused, Refusal) and refused.code == "not_in_team"
    assert not isinstance(await use_cases.consent_history(uow, caller("FK", "auditor", teams=()), case_ref), Refusal)
    found = await use_cases.access_log(uow, case_ref)
    assert not isinstance(found, Refusal) and [e.outcome for e in found[1]] == ["granted"]
    assert await use_cases.access_log(uow, "TS-NONE") == Refusal("case_not_found", "no such case")


async def test_a_destroyed_key_makes_the_details_as_good_as_erased(uow):
    case_ref = await new_case(uow)
    uow.deps = replace(uow.deps, keyring=Keyring.from_config("k2:" + "A" * 43))  # k1 removed
    details = await read(uow, case_ref, caller("REGION", "member"))
    assert isinstance(details, CaseDetails) and details.personal == {} and details.erased_at is not None


# --------------------------------------------------------------------------- closure and retention


async def test_a_case_is_closed_once(uow, clock):
    case_ref = await new_case(uow)
    await use_cases.close_case(uow, CaseClosed(case_ref=case_ref, reason=ExitReason.PLAN_COMPLETED, closed_at=NOW))
    later = NOW + timedelta(days=3)
    await use_cases.close_case(uow, CaseClosed(case_ref=case_ref, reason=ExitReason.CONSENT_WITHDRAWN, closed_at=later))
    case = uow.cases.rows[case_ref]
    assert (case.closed_at, case.exit_reason) == (NOW, "PLAN_COMPLETED")
    assert (case.closed_by, case.closed_by_party) == (None, None)  # a CaseClosed of before it was carried
    await use_cases.close_case(uow, CaseClosed(case_ref="TS-NONE", reason=ExitReason.PLAN_COMPLETED, closed_at=NOW))


async def test_a_closure_records_who_closed_the_case(uow):
    by_hand, automatic = await new_case(uow), await new_case(uow, agency_ref="AF-2026-002", personnummer=OTHER_PERSON)
    closed = CaseClosed(
        case_ref=by_hand, reason=ExitReason.MOVED, closed_at=NOW, closed_by="fk-officer-3", closed_by_party=Party.FK
    )
    await use_cases.close_case(uow, closed)
    await use_cases.close_case(
        uow,
        CaseClosed(
            case_ref=automatic,
            reason=ExitReason.CONSENT_WITHDRAWN,
            closed_at=NOW,
            closed_by="system:consent_withdrawn",
        ),
    )
    assert (uow.cases.rows[by_hand].closed_by, uow.cases.rows[by_hand].closed_by_party) == ("fk-officer-3", Party.FK)
    assert (uow.cases.rows[automatic].closed_by, uow.cases.rows[automatic].closed_by_party) == (
        "system:consent_withdrawn",
        None,
    )


async def erase(uow: FakeReferralUnitOfWork) -> list[str]:
    """One round of the retention task: the cases closed before the retention period (30 days)."""
    return await use_cases.erase_expired_personal_data(uow, retention_cutoff(uow.deps.clock.now(), uow.deps.retention))


async def test_personal_data_is_erased_after_retention_and_the_rest_stays(uow, clock):
    old = await new_case(uow)
    recent = await new_case(uow, agency_ref="AF-2026-002", personnummer=OTHER_PERSON)
    still_open = await new_case(uow, agency_ref="AF-2026-003", personnummer=None, protected_identity=True)
    for case_ref, closed_at in ((old, NOW - timedelta(days=31)), (recent, NOW - timedelta(days=29))):
        await use_cases.close_case(
            uow, CaseClosed(case_ref=case_ref, reason=ExitReason.PLAN_COMPLETED, closed_at=closed_at)
        )
    assert await erase(uow) == [old]  # retention: 30 days
    assert uow.vault.rows[old].fields == {} and uow.vault.rows[old].erased_at == NOW
    assert uow.vault.rows[old].data_key is None  # the case's own key is gone with it
    assert uow.cases.rows[old].person_pseudonym is None and uow.cases.rows[old].team_id == TEAM
    assert uow.vault.rows[recent].fields and uow.vault.rows[still_open].fields
    assert await erase(uow) == []  # once
    details = await read(uow, old, caller("REGION", "member"))
    assert isinstance(details, CaseDetails) and details.erased_at is not None and details.personal == {}
    clock.advance(days=2)
    assert await erase(uow) == [recent]


async def test_key_rotation_moves_every_live_case_to_the_new_master_key_and_skips_the_erased(uow, clock):
    import base64

    kept = await new_case(uow)
    erased = await new_case(uow, agency_ref="AF-2026-002", personnummer=OTHER_PERSON)
    await use_cases.close_case(
        uow, CaseClosed(case_ref=erased, reason=ExitReason.PLAN_COMPLETED, closed_at=NOW - timedelta(days=31))
    )
    assert await erase(uow) == [erased]
    new_master = "k2:" + base64.b64encode(b"\x02" * 32).decode()
    uow.deps = replace(uow.deps, keyring=Keyring.from_config(f"{new_master},{TEST_KEYS}"))
    assert await use_cases.rewrap_vault(uow) == 1  # the live case only
    assert await use_cases.rewrap_vault(uow) == 0  # all under the new key
    data_key = uow.vault.rows[kept].data_key
    assert data_key is not None and data_key.key_id == "k2"
    uow.deps = replace(uow.deps, keyring=Keyring.from_config(new_master))  # the old key removed
    details = await read(uow, kept, caller("REGION", "member"))
    assert isinstance(details, CaseDetails) and details.personal["personnummer"]

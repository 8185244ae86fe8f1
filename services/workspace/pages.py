"""What each page shows, gathered from the services as the signed-in person (``client.Api``),
and the forms read into the services' request bodies. No HTTP here, no templates: the routes
render what these give. Nothing is kept: every page asks the services again."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from starlette.datastructures import FormData

from shared.contracts.vocabulary import (
    ActionType,
    IncomeSource,
    Invitee,
    NotConsultedReason,
    Party,
    PlanStatus,
    Readiness,
    ReasonCode,
)

from .client import Answer, Api, Reason

PARTIES = [p.value for p in Party]
INCOME_SOURCES = [i.value for i in IncomeSource]
REASON_CODES = [r.value for r in ReasonCode]
INVITEES = [i.value for i in Invitee]
ACTION_TYPES = [a.value for a in ActionType]
NOT_CONSULTED = [r.value for r in NotConsultedReason]
READINESS = [r.value for r in Readiness]
PLAN_STATUSES = [p.value for p in PlanStatus]
ACTION_ROWS = 3  # plan actions on the consultation form
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class Outcome:
    """What a form's submission came to: the service's answer, or the form's own problems."""

    ok: bool
    reasons: list[Reason] = field(default_factory=list)
    body: Any = None

    @classmethod
    def of(cls, answer: Answer) -> Outcome:
        return cls(answer.ok, answer.reasons, answer.body)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _all(form: FormData, name: str, allowed: list[str]) -> list[str]:
    return [v for v in form.getlist(name) if isinstance(v, str) and v in allowed]


def _date_problem(value: str, name: str) -> Reason | None:
    if not value:
        return Reason("required", name)
    if not DATE.match(value):
        return Reason("invalid_date", name)
    try:
        date.fromisoformat(value)
    except ValueError:
        return Reason("invalid_date", name)
    return None


# --------------------------------------------------------------------------- coordinator


async def team_overview(api: Api, team_id: str) -> dict[str, Any]:
    """The team's coming meetings with their agendas and seats, the queue, the postponed cases
    and why, and the team's follow-ups that are due or overdue."""
    meetings, queue, due, overdue = await asyncio.gather(
        api.team_meetings(team_id),
        api.queue(team_id),
        api.team_followups(team_id, "due"),
        api.team_followups(team_id, "overdue"),
    )
    reasons = [r for a in (meetings, queue, due, overdue) for r in a.reasons]
    found = meetings.body["meetings"] if meetings.ok else []
    postponed = [
        {**item, "meeting_id": m["meeting_id"], "meeting_date": m["meeting_date"]}
        for m in found
        for item in m["agenda"]
        if item.get("postponements")
    ]
    followups = [
        {**f, "shown_state": state}
        for state, answer in (("due", due), ("overdue", overdue))
        for f in (answer.body["followups"] if answer.ok else [])
    ]
    return {
        "team": meetings.body["team"] if meetings.ok else None,
        "meetings": found,
        "queue": queue.body["cases"] if queue.ok else [],
        "postponed": postponed,
        "followups": sorted(followups, key=lambda f: f["due_on"]),
        "reasons": reasons,
    }


def cancellation_body(form: FormData) -> dict[str, Any]:
    note = _text(form, "note")
    return {"reason": _text(form, "reason"), **({"note": note} if note else {})}


def pre_meeting_body(form: FormData) -> tuple[dict[str, Any], list[Reason]]:
    held_on = _text(form, "held_on")
    problem = _date_problem(held_on, "held_on")
    return {"held_on": held_on}, [problem] if problem else []


def consultation_body(form: FormData) -> tuple[dict[str, Any], list[Reason]]:
    """The consultation form as the meeting service's body, or the form's own problems (each
    with its field): every problem at once, before anything is sent."""
    problems: list[Reason] = []
    if _text(form, "outcome") == "not_consulted":
        reason = _text(form, "not_consulted_reason")
        if reason not in NOT_CONSULTED:
            problems.append(Reason("required", "not_consulted_reason"))
        return {"outcome": "not_consulted", "reason": reason}, problems
    held_on = _text(form, "held_on")
    if problem := _date_problem(held_on, "held_on"):
        problems.append(problem)
    present = _all(form, "parties_present", PARTIES)
    if not present:
        problems.append(Reason("choose_one", "parties_present"))
    attended = _text(form, "individual_attended")
    if attended not in ("yes", "no"):
        problems.append(Reason("required", "individual_attended"))
    actions = []
    for i in range(ACTION_ROWS):
        kind, owner, due = (_text(form, f"action_{i}_{part}") for part in ("type", "owner", "due_on"))
        if not (kind or owner or due):
            continue
        if kind not in ACTION_TYPES or owner not in PARTIES or _date_problem(due, "due_on"):
            problems.append(Reason("action_incomplete", f"action_{i}"))
            continue
        actions.append({"type": kind, "responsible_party": owner, "due_on": due})
    return {
        "outcome": "held",
        "held_on": held_on,
        "parties_present": present,
        "others_invited": _all(form, "others_invited", INVITEES),
        "individual_attended": attended == "yes",
        "actions": actions,
    }, problems


# --------------------------------------------------------------------------- team member


def next_meeting(meetings: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The team's next meeting that is not cancelled (the services list them from today)."""
    return next((m for m in meetings if m["status"] != "cancelled"), None)


async def agenda_with_details(api: Api, meeting: dict[str, Any], party: str | None, purpose: str | None) -> list:
    """Each case of the agenda; with a purpose, its identity and question as the referral
    service gives them to this person (it decides on consent, and logs the read), or the notice
    of why not. Without a purpose nothing is read."""
    items = meeting["agenda"]
    if not purpose:
        return [{**item, "shown": "hidden"} for item in items]
    answers = await asyncio.gather(*(api.case_details(item["case_ref"], purpose) for item in items))
    return [{**item, **_details(item, answer, party)} for item, answer in zip(items, answers, strict=True)]


def _details(item: dict[str, Any], answer: Answer, party: str | None) -> dict[str, Any]:
    if answer.ok:
        body = answer.body
        return {"shown": "details", "details": {k: body.get(k) for k in ("personnummer", "protected_identity",
                                                                         "question", "erased")}}  # fmt: skip
    code = answer.reasons[0].code if answer.reasons else "details_unavailable"
    if code == "no_consent":
        withdrawn = item.get("consents", {}).get(party) == "withdrawn"
        return {"shown": "notice", "notice": "notice_withdrawn" if withdrawn else "notice_no_consent"}
    if code == "purpose_holds_identity":
        return {"shown": "purpose_refused"}
    if code == "not_in_team":
        return {"shown": "notice", "notice": "notice_not_in_team"}
    return {"shown": "notice", "notice": "notice_unavailable"}


def purpose_problem(purpose: str) -> Reason | None:
    if len(purpose) < 3 or len(purpose) > 200:
        return Reason("required", "purpose")
    return None


# --------------------------------------------------------------------------- officer


def referral_body(form: FormData, officer_id: str) -> dict[str, Any]:
    """The referral form as the referral service's body (the same rules decide: its answer's
    reasons are shown on the form)."""
    given_on, form_ref = _text(form, "consent_given_on"), _text(form, "form_ref")
    attend = _text(form, "wishes_to_attend")
    personnummer = _text(form, "personnummer")
    purpose = _text(form, "purpose")
    return {
        "agency_ref": _text(form, "agency_ref"),
        "personnummer": personnummer or None,
        "protected_identity": form.get("protected_identity") == "on",
        "team_id": _text(form, "team_id"),
        "question": _text(form, "question"),
        **({"purpose": purpose} if purpose else {}),
        "consents": [
            {"party": p, "given_on": given_on, "form_ref": form_ref} for p in _all(form, "consent_party", PARTIES)
        ],
        "wishes_to_attend": {"yes": True, "no": False}.get(attend),
        "income_source": _text(form, "income_source") or "OKAND",
        "reason_codes": _all(form, "reason_codes", REASON_CODES),
        "violence_question_asked": form.get("violence_question_asked") == "on",
        "officer_id": officer_id,
    }


def case_status(referral: dict[str, Any], schedule: Answer, followups: list[dict[str, Any]]) -> dict[str, Any]:
    """Where a case of the officer's party stands, in one status: closed, follow-up due,
    consulted, postponed (and why), scheduled (for which meeting), or accepted (waiting)."""
    where = schedule.body if schedule.ok else {}
    due = [f for f in followups if f["case_ref"] == referral["case_ref"] and f["state"] in ("due", "overdue")]
    status = where.get("status")
    if referral.get("closed_at") or status == "closed":
        return {"status": "case_closed"}
    if due:
        return {"status": "followup_due", "followup": due[0]}
    if status in ("consulted", "not_consulted"):
        return {"status": status, "meeting_date": where.get("meeting_date")}
    if (
        where.get("last_postponement")
        and status in ("queued", "on_hold")
        and (status == "on_hold" or where.get("postponements"))
    ):
        return {"status": "postponed", "why": where["last_postponement"], "meeting_date": where.get("meeting_date")}
    if where.get("meeting_id"):
        return {"status": "scheduled_for", "meeting_id": where["meeting_id"], "meeting_date": where.get("meeting_date")}
    return {"status": "accepted", "expected_date": where.get("expected_date")}


async def party_cases(api: Api) -> dict[str, Any]:
    listed, followups = await asyncio.gather(api.party_referrals(), api.party_followups("open"))
    referrals = listed.body if listed.ok else []
    schedules = await asyncio.gather(*(api.case_schedule(r["case_ref"]) for r in referrals))
    open_followups = followups.body["followups"] if followups.ok else []
    return {
        "cases": [{**r, **case_status(r, s, open_followups)} for r, s in zip(referrals, schedules, strict=True)],
        "reasons": listed.reasons + followups.reasons,
    }


def consent_body(form: FormData) -> dict[str, Any]:
    return {"party": _text(form, "party"), "given_on": _text(form, "given_on"), "form_ref": _text(form, "form_ref")}


def withdrawal_body(form: FormData) -> dict[str, Any]:
    return {"withdrawn_on": _text(form, "withdrawn_on"), "on_behalf_of_individual": form.get("on_behalf") == "on"}


def followup_body(form: FormData, kind: str) -> tuple[dict[str, Any], list[Reason]]:
    """The follow-up form as the follow-up service's body: the questions of its kind, only
    when the individual was reached."""
    recorded_on = _text(form, "recorded_on")
    problems = [p] if (p := _date_problem(recorded_on, "recorded_on")) else []
    reached = _text(form, "reached")
    if reached not in ("yes", "no"):
        problems.append(Reason("required", "reached"))
    body: dict[str, Any] = {"recorded_on": recorded_on, "reached": reached == "yes"}
    if reached == "yes":
        questions = ("plan_status",) if kind == "plan_check" else ("income_source", "readiness")
        for name in questions:
            if value := _text(form, name):
                body[name] = value
    return body, problems

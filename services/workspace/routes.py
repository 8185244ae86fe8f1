"""The workspace's pages (thin): who may open the page, the form read (with its CSRF token),
one call of ``pages`` or ``client.Api``, and the template rendered. A refusal of a service is
shown on the page with its reason (4xx); a form that worked redirects (303) with a notice."""

from __future__ import annotations

import re
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from . import i18n, pages, session
from .client import Answer, Api, Reason
from .session import Person, SignInRefused

templates = Jinja2Templates(directory=FilePath(__file__).parent / "templates")
router = APIRouter()

Ref = Annotated[str, Path(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9_-]+$")]
FollowUpId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+\.[a-z_]+$")]
IDENTITY = re.compile(r"\d{6}[-+]?\d{4}")
HOME = {"coordinator": "/team", "member": "/agenda", "officer": "/cases", "auditor": "/audit"}


class NotSignedIn(Exception):
    pass


class Forbidden(Exception):
    pass


class BadForm(Exception):
    pass


# --------------------------------------------------------------------------- dependencies


def signed_in(request: Request) -> Person:
    person = session.signed_in(request)
    if person is None:
        raise NotSignedIn
    return person


def roles(*allowed: str) -> Any:
    """A dependency: the signed-in person, if their role may open the page (else 403)."""

    def check(person: Annotated[Person, Depends(signed_in)]) -> Person:
        if person.role not in allowed:
            raise Forbidden
        return person

    return Depends(check)


Coordinator = Annotated[Person, roles("coordinator")]
TeamPerson = Annotated[Person, roles("coordinator", "member")]
Officer = Annotated[Person, roles("officer")]
Auditor = Annotated[Person, roles("auditor")]


def api_for(request: Request, person: Person) -> Api:
    return Api(request.app.state.services, person.token, request.state.correlation_id)


async def form_of(request: Request) -> FormData:
    """The posted form, if it carries this session's CSRF token (else 403)."""
    form = await request.form()
    if not session.csrf_ok(request, form):
        raise BadForm
    return form


Form = Annotated[FormData, Depends(form_of)]


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    lang = session.lang_of(request)
    notice = request.session.pop("notice", None)
    return templates.TemplateResponse(
        request,
        template,
        {
            "lang": lang,
            "t": lambda key: i18n.text(lang, key),
            "why": lambda reason: i18n.reason_text(lang, reason),
            "about": lambda reason: i18n.field_label(lang, reason),
            "person": session.signed_in(request),
            "csrf": session.csrf_token(request),
            "notice": notice,
            "path": request.url.path,
            "errors": [],
            "v": pages,
            **context,
        },
        status_code=status,
    )


def done(request: Request, to: str, notice: str = "saved") -> RedirectResponse:
    request.session["notice"] = notice
    return RedirectResponse(to, status_code=303)


def refused_status(answer: Answer | None) -> int:
    """A refusal's status on the page: the service's (403, 404, 409, 422, 503), or 422 for a
    form's own problems (no answer: nothing was sent)."""
    return answer.status if answer is not None and not answer.ok else 422


def add_exception_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotSignedIn)
    async def to_sign_in(request: Request, _exc: NotSignedIn) -> Response:
        return RedirectResponse(f"/sign-in?next={request.url.path}", status_code=303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, _exc: Forbidden) -> Response:
        return page(request, "message.html", 403, message="forbidden")

    @app.exception_handler(BadForm)
    async def bad_form(request: Request, _exc: BadForm) -> Response:
        return page(request, "message.html", 403, message="csrf_failed")


# --------------------------------------------------------------------------- health, sign-in


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "alive", "service": "workspace"}


@router.get("/health/ready")
async def ready() -> JSONResponse:
    """Ready once it serves: it holds nothing (each page says when a service does not answer)."""
    return JSONResponse({"status": "ready", "service": "workspace"})


@router.get("/")
async def home(request: Request) -> Response:
    person = session.signed_in(request)
    return RedirectResponse(HOME.get(person.role, "/sign-in") if person else "/sign-in", status_code=303)


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request, next: Annotated[str, Query(max_length=200)] = "/") -> HTMLResponse:
    settings = request.app.state.settings
    return page(request, "sign_in.html", dev=settings.dev, oidc=request.app.state.oidc is not None, next=next)


@router.post("/dev/sign-in")
async def dev_sign_in(request: Request) -> Response:
    """Development only (404 otherwise, before anything is read): a token for the chosen role,
    party and team."""
    settings = request.app.state.settings
    if not settings.dev:
        return page(request, "message.html", 404, message="dev_only")
    form = await form_of(request)
    fields = {k: (form.get(k) or "").strip() for k in ("user_id", "role", "party", "team")}  # type: ignore[union-attr]
    try:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", fields["user_id"]) or fields["role"] not in session.ROLES:
            raise SignInRefused("bad_input")
        if fields["party"] not in pages.PARTIES:
            raise SignInRefused("party_missing")
        person = session.dev_person(settings, user_id=fields["user_id"], role=fields["role"], party=fields["party"],
                                    team=fields["team"] or None)  # fmt: skip
    except SignInRefused as refused:
        return page(request, "sign_in.html", 422, dev=True, oidc=False, next="/", errors=[Reason(refused.code)])
    session.start(request, person)
    return RedirectResponse(session.local_path(str(form.get("next") or HOME[person.role])), status_code=303)


@router.get("/auth/login")
async def oidc_login(request: Request) -> Response:
    oidc = request.app.state.oidc
    if oidc is None:
        return page(request, "message.html", 404, message="no_sign_in")
    return await oidc.begin(request)


@router.get("/auth/callback", name="oidc_callback")
async def oidc_callback(request: Request) -> Response:
    oidc = request.app.state.oidc
    if oidc is None:
        return page(request, "message.html", 404, message="no_sign_in")
    try:
        person = await oidc.finish(request)
    except SignInRefused as refused:
        return page(request, "sign_in.html", 401, dev=False, oidc=True, next="/", errors=[Reason(refused.code)])
    session.start(request, person)
    return RedirectResponse(HOME[person.role], status_code=303)


@router.post("/sign-out")
async def sign_out(request: Request, form: Form) -> Response:
    session.end(request)
    return RedirectResponse("/sign-in", status_code=303)


@router.get("/lang/{lang}")
async def language(request: Request, lang: str, next: Annotated[str, Query(max_length=200)] = "/") -> Response:
    request.session["lang"] = "en" if lang == "en" else "sv"
    return RedirectResponse(session.local_path(next), status_code=303)


# --------------------------------------------------------------------------- coordinator


@router.get("/team", response_class=HTMLResponse)
async def team(request: Request, person: Coordinator) -> HTMLResponse:
    overview = await pages.team_overview(api_for(request, person), person.team or "")
    return page(request, "team.html", **overview)


@router.get("/meetings/{meeting_id}", response_class=HTMLResponse)
async def meeting(request: Request, meeting_id: Ref, person: Coordinator) -> HTMLResponse:
    found = await api_for(request, person).meeting(meeting_id)
    if not found.ok:
        return page(request, "message.html", found.status, message="meeting_not_found", reasons=found.reasons)
    return page(request, "meeting.html", meeting=found.body)


@router.post("/meetings/{meeting_id}/cancellation", response_class=HTMLResponse)
async def cancel(request: Request, meeting_id: Ref, person: Coordinator, form: Form) -> Response:
    answer = await api_for(request, person).cancel_meeting(meeting_id, pages.cancellation_body(form))
    if answer.ok:
        return done(request, f"/meetings/{meeting_id}", "cancelled")
    found = await api_for(request, person).meeting(meeting_id)
    return page(request, "meeting.html", refused_status(answer), meeting=found.body, errors=answer.reasons)


@router.post("/meetings/{meeting_id}/pre-meeting", response_class=HTMLResponse)
async def pre_meeting(request: Request, meeting_id: Ref, person: Coordinator, form: Form) -> Response:
    body, problems = pages.pre_meeting_body(form)
    answer = None if problems else await api_for(request, person).record_pre_meeting(meeting_id, body)
    if answer is not None and answer.ok:
        return done(request, f"/meetings/{meeting_id}")
    errors = problems or (answer.reasons if answer else [])
    found = await api_for(request, person).meeting(meeting_id)
    return page(request, "meeting.html", refused_status(answer), meeting=found.body, errors=errors)


@router.get("/meetings/{meeting_id}/cases/{case_ref}/consultation", response_class=HTMLResponse)
async def consultation_form(request: Request, meeting_id: Ref, case_ref: Ref, person: Coordinator) -> HTMLResponse:
    found = await api_for(request, person).meeting(meeting_id)
    if not found.ok or case_ref not in {i["case_ref"] for i in found.body["agenda"]}:
        return page(request, "message.html", 404, message="case_not_found")
    return page(request, "consultation.html", meeting=found.body, case_ref=case_ref, form={})


@router.post("/meetings/{meeting_id}/cases/{case_ref}/consultation", response_class=HTMLResponse)
async def consultation(request: Request, meeting_id: Ref, case_ref: Ref, person: Coordinator, form: Form) -> Response:
    body, problems = pages.consultation_body(form)
    api = api_for(request, person)
    answer = None if problems else await api.record_consultation(meeting_id, case_ref, body)
    if answer is not None and answer.ok:
        return done(request, f"/meetings/{meeting_id}", "consultation_recorded")
    errors = problems or (answer.reasons if answer else [])
    found = await api.meeting(meeting_id)
    return page(request, "consultation.html", refused_status(answer), meeting=found.body, case_ref=case_ref,
                form=form, errors=errors)  # fmt: skip


# --------------------------------------------------------------------------- team member


@router.get("/agenda", response_class=HTMLResponse)
async def agenda(request: Request, person: TeamPerson) -> HTMLResponse:
    api = api_for(request, person)
    meetings = await api.team_meetings(person.team or "")
    upcoming = pages.next_meeting(meetings.body["meetings"]) if meetings.ok else None
    purpose = request.session.get("purposes", {}).get(upcoming["meeting_id"]) if upcoming else None
    items = await pages.agenda_with_details(api, upcoming, person.party, purpose) if upcoming else []
    status = 200 if meetings.ok else meetings.status
    return page(request, "agenda.html", status, meeting=upcoming, items=items, purpose=purpose,
                errors=meetings.reasons)  # fmt: skip


@router.post("/agenda/purpose", response_class=HTMLResponse)
async def agenda_purpose(request: Request, person: TeamPerson, form: Form) -> Response:
    """The read's purpose, asked once per meeting: kept in the session, sent with each read."""
    purpose, meeting_id = str(form.get("purpose") or "").strip(), str(form.get("meeting_id") or "")
    problem = pages.purpose_problem(purpose) or (Reason("purpose_holds_identity") if IDENTITY.search(purpose) else None)
    if problem or not re.fullmatch(r"[A-Za-z0-9_-]{1,48}", meeting_id):
        return page(request, "agenda.html", 422, meeting=None, items=[], purpose=None,
                    errors=[problem or Reason("bad_input")])  # fmt: skip
    request.session["purposes"] = {meeting_id: purpose}
    return RedirectResponse("/agenda", status_code=303)


# --------------------------------------------------------------------------- officer


@router.get("/referrals/new", response_class=HTMLResponse)
async def referral_form(request: Request, person: Officer) -> HTMLResponse:
    return page(request, "referral.html", form={}, teams=await _teams(request, person))


@router.post("/referrals/new", response_class=HTMLResponse)
async def submit_referral(request: Request, person: Officer, form: Form) -> Response:
    answer = await api_for(request, person).submit_referral(pages.referral_body(form, person.user_id))
    if answer.ok:
        return done(request, f"/cases/{answer.body['case_ref']}", "referral_accepted")
    return page(request, "referral.html", refused_status(answer), form=form, errors=answer.reasons,
                teams=await _teams(request, person))  # fmt: skip


async def _teams(request: Request, person: Person) -> list[dict[str, Any]]:
    answer = await api_for(request, person).teams()
    return answer.body if answer.ok else []


@router.get("/cases", response_class=HTMLResponse)
async def cases(request: Request, person: Officer) -> HTMLResponse:
    found = await pages.party_cases(api_for(request, person))
    return page(request, "cases.html", cases=found["cases"], errors=found["reasons"])


@router.get("/cases/{case_ref}", response_class=HTMLResponse)
async def case(request: Request, case_ref: Ref, person: Officer) -> HTMLResponse:
    return await _case_page(request, case_ref, person)


async def _case_page(request: Request, case_ref: str, person: Person, refused: Answer | None = None) -> HTMLResponse:
    """The case's status and consent history with the consent forms; ``refused``: a form's refusal."""
    api = api_for(request, person)
    history, schedule = await api.consents(case_ref), await api.case_schedule(case_ref)
    if not history.ok and not schedule.ok:
        return page(request, "message.html", history.status, message="case_not_found", reasons=history.reasons)
    return page(request, "case.html", refused_status(refused) if refused else 200, case_ref=case_ref,
                history=history.body, schedule=schedule.body, errors=refused.reasons if refused else [])  # fmt: skip


@router.post("/cases/{case_ref}/consents", response_class=HTMLResponse)
async def record_consent(request: Request, case_ref: Ref, person: Officer, form: Form) -> Response:
    answer = await api_for(request, person).record_consent(case_ref, pages.consent_body(form))
    if answer.ok:
        return done(request, f"/cases/{case_ref}")
    return await _case_page(request, case_ref, person, answer)


@router.post("/cases/{case_ref}/withdrawal", response_class=HTMLResponse)
async def withdraw_consent(request: Request, case_ref: Ref, person: Officer, form: Form) -> Response:
    party = str(form.get("party") or "")
    if party not in pages.PARTIES:
        return await _case_page(request, case_ref, person, Answer(422, None, [Reason("party_missing", "party")]))
    answer = await api_for(request, person).withdraw_consent(case_ref, party, pages.withdrawal_body(form))
    if answer.ok:
        return done(request, f"/cases/{case_ref}")
    return await _case_page(request, case_ref, person, answer)


@router.get("/followups", response_class=HTMLResponse)
async def followups(request: Request, person: Officer) -> HTMLResponse:
    found = await api_for(request, person).party_followups("open")
    listed = found.body["followups"] if found.ok else []
    return page(request, "followups.html", followups=listed, errors=found.reasons)


@router.get("/followups/{followup_id}", response_class=HTMLResponse)
async def followup(request: Request, followup_id: FollowUpId, person: Officer) -> HTMLResponse:
    found = await api_for(request, person).followup(followup_id)
    if not found.ok:
        return page(request, "message.html", found.status, message="followup_not_found")
    return page(request, "followup.html", followup=found.body, form={})


@router.post("/followups/{followup_id}", response_class=HTMLResponse)
async def record_followup(request: Request, followup_id: FollowUpId, person: Officer, form: Form) -> Response:
    api = api_for(request, person)
    found = await api.followup(followup_id)
    if not found.ok:
        return page(request, "message.html", found.status, message="followup_not_found")
    body, problems = pages.followup_body(form, found.body["kind"])
    answer = None if problems else await api.record_followup(followup_id, body)
    if answer is not None and answer.ok:
        return done(request, f"/followups/{followup_id}")
    errors = problems or (answer.reasons if answer else [])
    return page(request, "followup.html", refused_status(answer), followup=found.body, form=form, errors=errors)


# --------------------------------------------------------------------------- auditor


@router.get("/audit", response_class=HTMLResponse)
async def audit(
    request: Request,
    person: Auditor,
    case_ref: Annotated[str | None, Query(max_length=48, pattern=r"^[A-Za-z0-9_-]*$")] = None,
) -> HTMLResponse:
    found = await api_for(request, person).access_log(case_ref) if case_ref else None
    entries = found.body["entries"] if found is not None and found.ok else None
    status = found.status if found is not None and not found.ok else 200
    return page(request, "audit.html", status, case_ref=case_ref or "", entries=entries,
                errors=found.reasons if found is not None else [])  # fmt: skip


@router.get("/audit/figures", response_class=HTMLResponse)
async def figure_reads(request: Request, person: Auditor) -> HTMLResponse:
    found = await api_for(request, person).figure_reads()
    return page(request, "figure_reads.html", reads=found.body["reads"] if found.ok else [], errors=found.reasons)

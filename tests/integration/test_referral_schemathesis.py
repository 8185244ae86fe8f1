"""Property-based test of the referral service's HTTP API against its own OpenAPI document.

Schemathesis generates requests for every operation of the document, with valid and with
invalid data, sent as an AF officer of team GAVLE-BRYNAS, and checks every answer with all its
built-in checks: no server error; status code, content type, headers and body as documented;
invalid data rejected, valid data not (see BUSINESS_RULES); authentication enforced
(``ignored_auth`` sends a successful request again without a token and with a bad one). And one
of ours: no answer holds anything that looks like a personnummer.

Two rounds: first every operation as the document describes it (random case references, so the
case routes mostly answer 404), then the case routes again on a real case (submitted first, with
valid data), so that their 200/201/403 answers are generated and checked too; the reads of that
round also as an AF member of the team, who may read the case's personal data.

One event loop: the runtime's asyncpg pool lives on the pytest-asyncio session loop, so the app
is served there, by uvicorn on a local socket (without lifespan: the test starts the runtime).
Hypothesis and schemathesis are synchronous; they run in a worker thread and reach the app over
HTTP, which is also what lets schemathesis' own probes (sent with a new client) reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import traceback

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode

from services.referral import app as referral_app
from shared.platform.runtime import build_app
from tests.support.http import token
from tests.support.privacy import personnummer_in
from tests.support.referrals import TEAM, submit_referral

pytestmark = pytest.mark.infra

MAX_EXAMPLES = 25  # per operation, generation mode and round

# `positive_data_acceptance` expects schema-valid data to be accepted. These operations
# document 422 as the answer to their business rules, which JSON Schema cannot express (a
# known team, a personnummer's check digit and age, consent dates not in the future, the
# referring party's own consent, a case still open): there 422 is an expected answer too.
BUSINESS_RULES = [
    ("POST", "/api/v1/referrals"),
    ("POST", "/api/v1/cases/{case_ref}/consents"),
    ("POST", "/api/v1/cases/{case_ref}/consents/{party}/withdrawal"),
]
ACCEPTED_OR_RULED_OUT = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]


def config(bearer: str) -> schemathesis.Config:
    """The token as the document's own security scheme (so schemathesis knows it: the cases that
    test a missing or invalid token go without it), and the BUSINESS_RULES statuses."""
    return schemathesis.Config.from_dict(
        {
            "auth": {"openapi": {"HTTPBearer": {"bearer": bearer}}},
            "operations": [
                {
                    "include-method": method,
                    "include-path": path,
                    "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED_OR_RULED_OUT}},
                }
                for method, path in BUSINESS_RULES
            ],
        }
    )


@contextlib.asynccontextmanager
async def serving(app):
    """Serve ``app`` with uvicorn on this event loop, on a free local port; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None, access_log=False))
    task = asyncio.create_task(server._serve(sockets=[sock]))  # _serve: no signal handlers
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


def no_personnummer_in_body(ctx, response, case) -> None:
    """No answer may hold a personnummer-looking string, except the one field meant to reveal
    it: ``personnummer`` of a granted case read (``GET /api/v1/cases/{case_ref}``, 200)."""
    text = response.text or ""
    if case.method.upper() == "GET" and case.path == "/api/v1/cases/{case_ref}" and response.status_code == 200:
        body = json.loads(text)
        body.pop("personnummer", None)
        text = json.dumps(body, ensure_ascii=False)
    found = personnummer_in(text)
    assert not found, (
        f"{response.status_code} answer of {case.method} {case.path} holds {len(found)} personnummer-like string(s)"
    )


def has_inputs(operation) -> bool:
    raw = operation.definition.raw
    return bool(raw.get("parameters") or raw.get("requestBody"))


def fuzz(operation, mode: GenerationMode, base_url: str, **fixed) -> None:
    """Up to MAX_EXAMPLES generated cases of one operation, each sent and checked (in a worker
    thread). ``fixed``: values not generated (e.g. ``path_parameters``)."""

    @hypothesis_settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases every run: CI is reproducible
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    def check(case):
        case.call_and_validate(base_url=base_url, additional_checks=[no_personnummer_in_body], timeout=30)

    check()


def submit_valid_referral(operation, base_url: str, headers: dict) -> str:
    """A referral the rules accept (sent twice: the replay gets the same answer); its case_ref."""
    body = submit_referral(random.Random())["payload"]
    answers = []
    for _ in range(2):
        case = operation.Case(body=body, media_type="application/json")
        answers.append(
            case.call_and_validate(base_url=base_url, headers=headers, additional_checks=[no_personnummer_in_body])
        )
    assert [a.status_code for a in answers] == [201, 201], answers[0].text
    assert answers[0].json() == answers[1].json()
    return answers[0].json()["case_ref"]


async def test_referral_api_conforms_to_its_openapi_document(settings, runtimes):
    runtime = await runtimes(referral_app.spec(settings), settings)
    officer = token(settings, party="AF", role="officer", teams=[TEAM])
    # officers may not read a case's personal data: a member of the team reads it, in round two
    member = token(settings, party="AF", role="member", teams=[TEAM])
    failures: list[str] = []

    async def run(label: str, function, *args, **kwargs):
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        # schemathesis raises a FailureGroup (a BaseExceptionGroup) for what it finds; every
        # operation is run, and all findings are reported together
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"--- {label}\n" + "".join(traceback.format_exception_only(exc)))

    async with serving(build_app(runtime)) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            document = (await client.get("/openapi.json")).raise_for_status().json()
        schema, member_schema = (
            schemathesis.openapi.from_dict(document, config=config(caller["Authorization"].removeprefix("Bearer ")))
            for caller in (officer, member)
        )
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == 12, [op.label for op in operations]

        for operation in operations:
            for mode in GenerationMode:
                if mode == GenerationMode.NEGATIVE and not has_inputs(operation):
                    continue  # nothing to make invalid (only the token, which is ours)
                await run(f"{operation.label} [{mode.value}]", fuzz, operation, mode, base_url)

        case_ref = await run(
            "submit a valid referral", submit_valid_referral, schema["/api/v1/referrals"]["POST"], base_url, officer
        )
        if case_ref:
            # reads first (also as the member): the consent changes may withdraw AF's consent
            on_case = []
            for operation in operations:
                if "{case_ref}" in operation.path:
                    on_case.append(("officer", operation))
                    if operation.method.upper() == "GET":
                        on_case.append(("member", member_schema[operation.path][operation.method.upper()]))
            on_case.sort(key=lambda pair: pair[1].method.upper() != "GET")
            for who, operation in on_case:
                for mode in GenerationMode:
                    await run(
                        f"{operation.label} on case {case_ref}, as {who} [{mode.value}]",
                        fuzz,
                        operation,
                        mode,
                        base_url,
                        path_parameters={"case_ref": case_ref},
                    )
            async with runtime.pool.acquire() as conn:
                granted = await conn.fetchval("SELECT count(*) FROM access_log WHERE outcome = 'granted'")
            if not granted:  # the personal data was never read, so never checked
                failures.append("--- no granted read of the case's personal data")

    assert not failures, f"{len(failures)} failing:\n" + "\n".join(failures)

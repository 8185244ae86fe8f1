"""`make demo`, shortened (60 simulated days in about 20 s), in a terminal (a pseudo-terminal):
the terminal tells a story in readable lines, no JSON; the demo waits until the board's figures
hold everything the simulator did, and they do: this quarter's referrals by party and its
consultations equal what the simulator reports. In Chromium (when there), the dashboard it
points to shows the board the quarter's figures, not zeros (screenshot kept)."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.support.agencies import rabbitmqctl_runner
from tests.support.http import token
from tests.support.system import ARTIFACTS
from tools import broker_users
from tools.launcher import ROOT

pytestmark = pytest.mark.infra

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SUMMARY = re.compile(
    r"this quarter \((\d{4}Q[1-4])\) the simulator referred AF (\d+), FK (\d+), "
    r"KOMMUN (\d+), REGION (\d+) \(\d+\) and consulted (\d+)"
)


def five_free_ports() -> int:
    """The first of five free consecutive ports (the launcher's TRISAM_HTTP_PORT: the four
    services and the workspace)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base > 65000:
            continue
        try:
            for port in range(base, base + 5):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no five free ports in a row")


class Terminal:
    """A child process on a pseudo-terminal, its output collected."""

    def __init__(self, argv: list[str], env: dict):
        master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT, start_new_session=True
        )
        os.close(slave)
        self.master, self.output = master, []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output.append(chunk.decode(errors="replace"))

    def text(self) -> str:
        return "".join(self.output)

    async def wait_for(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := re.search(pattern, self.text()):
                return found
            if self.proc.poll() is not None:
                raise AssertionError(f"the demo exited ({self.proc.returncode}):\n{self.text()[-3000:]}")
            await asyncio.sleep(0.5)
        raise AssertionError(f"no {pattern!r} within {timeout:.0f} s:\n{self.text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        os.close(self.master)


async def test_a_short_demo_tells_a_story_and_lands_on_the_quarters_figures(settings, infra):
    base = five_free_ports()
    env = {k: v for k, v in os.environ.items() if k != "CI"}  # a developer's terminal
    env.update(
        {
            "DEMO": "1",
            "TRISAM_NAMESPACE": settings.namespace,
            "TRISAM_AMQP_URL": settings.amqp_url,
            "TRISAM_DATABASE_URL": settings.database_url,
            "TRISAM_HTTP_PORT": str(base),
            "TRISAM_DEMO_DAYS": "60",
            "TRISAM_DEMO_SECONDS": "40",  # slow enough for a busy machine: the simulator keeps up with the clock
            "COLUMNS": "160",
        }
    )
    terminal = Terminal([sys.executable, "-m", "tools.launcher"], env)
    metrics = f"http://127.0.0.1:{base + 3}"
    try:
        found = await terminal.wait_for(SUMMARY.pattern, timeout=180)
        await terminal.wait_for(r"hold every event", timeout=150)
        await terminal.wait_for(r"Ctrl-C stops everything", timeout=10)
        quarter, af, fk, kommun, region, consulted = found.groups()
        did = {"AF": int(af), "FK": int(fk), "KOMMUN": int(kommun), "REGION": int(region)}
        assert sum(did.values()) > 0 and int(consulted) > 0, terminal.text()

        board = token(settings, party=None, role="board", user="demo-test")
        async with httpx.AsyncClient(base_url=metrics, timeout=10) as client:
            figures = (await client.get("/api/v1/figures", params={"period": quarter}, headers=board)).json()["figures"]
        assert figures["cases_referred"]["by"]["referring_party"] == did
        assert figures["cases_consulted"]["value"] == int(consulted)

        text = terminal.text()
        for line in text.splitlines():
            stripped = line.strip()
            assert not (stripped.startswith("{") and stripped.endswith("}")), f"a JSON line: {stripped[:200]}"
        assert f"logs: logs/{settings.namespace}/<service>.log" in text
        assert f"{metrics}/?view=exact&as=board" in text
        assert f"workspace: http://127.0.0.1:{base + 4}/" in text  # the people's pages, and where
        assert f"the team workspace:         http://127.0.0.1:{base + 4}/" in text  # and at the end
        for service in ("referral", "meeting", "followup", "metrics"):  # the JSON went to the files
            log = ROOT / "logs" / settings.namespace / f"{service}.log"
            assert json.loads(log.read_text().splitlines()[0])["service"] == service

        if CHROMIUM:
            await _the_board_sees_the_quarter(metrics, quarter, sum(did.values()))
    finally:
        terminal.stop()
        shutil.rmtree(ROOT / "logs" / settings.namespace, ignore_errors=True)
        run = rabbitmqctl_runner(infra)
        if run is not None:
            await asyncio.to_thread(
                broker_users.delete_with_rabbitmqctl, [u.name for u in broker_users.dev_users(settings.namespace)], run
            )


async def _the_board_sees_the_quarter(metrics: str, quarter: str, referred: int) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1600})
            await page.goto(f"{metrics}/?view=exact&as=board")
            await page.wait_for_selector("body[data-loaded=yes][data-audience=exact]", timeout=20000)
            assert await page.input_value("#exact-period") == quarter  # the latest period with data
            shown = await page.text_content('[data-figure="cases_referred"] strong')
            assert shown == str(referred) and int(shown) > 0
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "demo-dashboard.png"), full_page=False)
        finally:
            await browser.close()

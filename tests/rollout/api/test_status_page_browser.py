"""The status page in headless Debian Chromium (Playwright, no downloaded browser) during a real rollout."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rollout.controller import operations
from rollout.controller.loop import Controller
from rollout.executions.stats import LedgerExecutionStats
from rollout.freeze import new_freeze
from rollout.jobspec import Release
from rollout.scheduler import LocalScheduler
from tests.rollout.api.conftest import NAME, OTHER_ENV, Api, rollout_manifest
from tests.rollout.executions.conftest import Builds
from tests.support.nomad_world import Verifier
from tests.support.real import need_binary

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def rollout_in_progress(api: Api, builds: Builds, tmp: Path) -> None:
    """v1 becomes stable, then v2 rolls out: 20 % weight, waiting in the analysis step; a freeze is set."""
    scheduler = LocalScheduler(tmp / "local-scheduler.json")
    for built in (builds.v1, builds.v2):
        operations.start_rollout(store=api.store, scheduler=scheduler, manifest=rollout_manifest(), variant="fast",
                                 release=Release(NAME, built.version, built.digest, built.image),
                                 environment=OTHER_ENV, now=datetime.now(UTC))
        Controller(environment=OTHER_ENV, biomarker=NAME, scheduler=scheduler, store=api.store, verifier=Verifier(),
                   stats=LedgerExecutionStats(api.services.ledger), clock=lambda: datetime.now(UTC)).run()
    freeze = new_freeze(reason="radiology QA audit week", owner="qa@example.org", now=datetime.now(UTC),
                        expires_at=datetime.now(UTC) + timedelta(days=3), cohort="nct-0042", version="1.0.0")
    operations.add_freeze(api.store, OTHER_ENV, NAME, freeze, None)


def test_the_status_page_shows_versions_step_and_freeze(api: Api, builds: Builds, tmp_path: Path) -> None:
    chromium = need_binary("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    rollout_in_progress(api, builds, tmp_path)
    with api.client("execution-client") as client:
        client.post("/v1/executions", json={"biomarker": NAME, "pin": "1.0.0", "input": api.study("s-1", 1),
                                            "environment": OTHER_ENV})
    api.services.dispatcher.idle(60)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium, headless=True, args=FLAGS,
            viewport={"width": 1200, "height": 1400})
        try:
            page = browser.new_page()
            page.goto(api.url + "/")
            page.fill("#token", api.tokens["release-manager"])
            page.click("button[type=submit]")
            card = page.locator(f"section[data-environment='{OTHER_ENV}'] article[data-biomarker='{NAME}']")
            card.wait_for()
            stable, candidate = card.locator("dd.stable").inner_text(), card.locator("dd.candidate").inner_text()
            step, weight = card.locator("dd.step").inner_text(), card.locator("dd.weight").inner_text()
            freeze = card.locator("table.freezes").inner_text()
            markers = card.locator("svg polyline.weight-line").count()
            executions = card.locator("table.executions tbody").inner_text()
            width = page.eval_on_selector(f"#{OTHER_ENV}-{NAME} .fill", "e => e.style.width")
            page.screenshot(path=str(tmp_path / "status-page.png"), full_page=True)
            cookie = next(c for c in browser.cookies() if c["name"] == "delivery_session")
            page.click("form[action='/logout'] button[type=submit]")  # carries the session's CSRF token
            page.locator("#token").wait_for()
            signed_out = page.request.get(api.url + "/status/panel",
                                          headers={"Cookie": f"delivery_session={cookie['value']}"}).status
        finally:
            browser.close()
    shutil.copy(tmp_path / "status-page.png", ARTIFACTS / "status-page.png")
    assert stable.startswith("1.0.0") and candidate.startswith("2.0.0")
    assert "1.0.0" in executions and "succeeded" in executions
    assert re.search(r"step 2 of 4 · analysis", step), step
    assert "20%" in weight and width == "20%"
    assert "radiology QA audit week" in freeze and "nct-0042" in freeze
    assert markers == 1
    assert api.tokens["release-manager"] not in cookie["value"]  # an opaque session id, never the token
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert signed_out == 401  # the session id is worthless once signed out


def test_the_page_asks_for_a_token_and_refuses_execution_clients(api: Api) -> None:
    with api.client(None) as anonymous, api.client("execution-client") as client:
        login = anonymous.get("/")
        refused = client.get("/")
        script = anonymous.get("/static/status.js")
    assert login.status_code == 200 and 'name="token"' in login.text
    assert refused.status_code == 403 and "cannot see the status page" in refused.text
    assert script.status_code == 200 and "fetch(" in script.text
    assert "script-src 'self'" in login.headers["content-security-policy"]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback only: a proxy from the environment must not see the page."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)

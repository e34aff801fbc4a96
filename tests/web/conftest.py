"""Browser tests: the review app on a live server, driven by Playwright in Chromium.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``.ci/run``); Playwright's own
browser download does not work on these machines, and is never used.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from api_server import LiveServer
from sluice.api import create_app
from sluice.governance import create_token

CHROMIUM = os.environ.get("SLUICE_TEST_CHROMIUM", "/usr/bin/chromium")
# The flags seen to work here: no sandbox as root, and no background network traffic.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser() -> Iterator[Any]:
    """Chromium for one test. Not shared across tests: Playwright's sync API keeps an
    event loop running in the test thread while it is open, which other tests (DBOS in
    particular) must not inherit."""
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live(runtime: Any) -> Iterator[LiveServer]:
    with LiveServer(create_app(runtime.settings, runtime=runtime)) as server:
        yield server


@pytest.fixture
def signed_in(browser: Any, live: LiveServer, runtime: Any) -> Iterator[Callable[..., Any]]:
    """``signed_in(name, role="reviewer", **scopes)``: a page whose user signed in."""
    contexts = []

    def make(name: str, role: str = "reviewer", **scopes: Any) -> Any:
        token, _ = create_token(runtime.store, name=name, role=role, created_by="test", **scopes)
        context = browser.new_context(base_url=live.url, viewport={"width": 1200, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.goto("/review")
        assert "/login" in page.url  # not signed in yet: sent to the sign-in form
        page.get_by_label("API token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/review")
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def worker_running(runtime: Any) -> Iterator[Callable[[list[str]], None]]:
    """``worker_running(pipelines)`` starts a worker thread until the test ends."""
    stops: list[tuple[threading.Event, threading.Thread]] = []

    def start(pipelines: list[str]) -> None:
        stop = threading.Event()
        thread = threading.Thread(target=runtime.worker(pipelines).run, kwargs={"stop": stop})
        thread.start()
        stops.append((stop, thread))

    yield start
    for stop, thread in stops:
        stop.set()
        thread.join(60)

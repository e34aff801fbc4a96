"""A reviewer works the queue in a real browser; the waiting pipeline resumes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from browser_helpers import in_thread, screenshot, wait_for
from sluice.execution import get_item, get_pipeline, parse_jsonl, submit_lines
from sluice.pipelines.support_triage.demo import run_demo
from sluice.review import list_tasks
from sluice.review.tables import decisions

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _toys() -> None:
    import toy_pipelines  # noqa: F401


def _submit_toy(runtime: Any, text: str) -> str:
    line = json.dumps(
        {"specversion": "1.0", "id": "w1", "source": "web", "type": "t", "data": {"text": text}}
    )
    report = submit_lines(
        runtime.store, get_pipeline("toy-echo"), parse_jsonl([line], max_bytes=10_000), origin="t"
    )
    in_thread(runtime.worker(["toy-echo"]).run, drain=True)
    return report.accepted[0][1]


def test_a_reviewer_corrects_a_label_with_the_keyboard_and_the_item_resumes(
    runtime: Any, intent_model: Any, signed_in: Any, worker_running: Any
) -> None:
    in_thread(run_demo, runtime, limit=40)
    (first, *_) = list_tasks(runtime.store)
    page = signed_in("ana")
    screenshot(page, "review-queue")
    page.keyboard.press("Tab")  # the page works without a mouse
    page.goto("/review/next")
    page.wait_for_selector("#message")
    task_id = page.url.rsplit("/", 1)[-1].split("?")[0]
    assert task_id == first.id, "the most urgent task comes first"
    alternatives = page.locator("#alternatives li")
    assert alternatives.count() >= 2
    second = alternatives.nth(1).inner_text()
    wanted = second.split(" ", 1)[1].rsplit(" (", 1)[0].strip()

    page.keyboard.press("c")  # claim
    page.wait_for_selector("text=claimed by ana")
    page.keyboard.press("2")  # pick the second alternative
    assert page.locator("#label").input_value() == wanted
    screenshot(page, "review-screen")
    page.keyboard.press("s")  # decide with the selected label
    page.wait_for_selector(".flash")
    assert "recorded" in page.locator(".flash").inner_text()

    worker_running(["support-triage"])
    wait_for(lambda: get_item(runtime.store, first.item_id)["status"] == "completed")
    item = get_item(runtime.store, first.item_id)
    assert item["outbox"]["payload"]["intent"] == wanted
    assert item["outbox"]["decided_by"] == "reviewer:ana"
    review = next(s for s in item["steps"] if s["step"] == "review")
    assert review["output"]["decision"]["seconds_to_decide"] is not None

    admin = signed_in("lead", role="admin")
    admin.goto("/dashboard")
    assert admin.locator("#costs").inner_text().count("ana") == 1
    screenshot(admin, "dashboard")
    admin.goto(f"/items/{first.item_id}")
    assert admin.locator("#intact").inner_text() == "intact"


def test_without_pii_clearance_personal_data_is_masked(runtime: Any, signed_in: Any) -> None:
    text = "please review: write to jo.bloggs@example.com or call +44 20 7946 0958"
    _submit_toy(runtime, text)
    (task,) = list_tasks(runtime.store)
    plain = signed_in("bo")
    plain.goto(f"/review/{task.id}")
    shown = plain.locator("#message").inner_text()
    assert "jo.bloggs@example.com" not in shown and "7946" not in shown
    assert "<EMAIL>" in shown and "<PHONE>" in shown
    assert plain.locator("#masked-note").is_visible()
    cleared = signed_in("cy", pii_clearance=True)
    cleared.goto(f"/review/{task.id}")
    assert cleared.locator("#message").inner_text() == text


def test_two_reviewers_deciding_at_once_make_exactly_one_decision(
    runtime: Any, signed_in: Any
) -> None:
    _submit_toy(runtime, "please review this one")
    (task,) = list_tasks(runtime.store)
    ana, bo = signed_in("ana"), signed_in("bo")
    for page in (ana, bo):
        page.goto(f"/review/{task.id}")
    # Both press at once: the clicks are sent before either answer comes back.
    ana.locator("#approve").click(no_wait_after=True)
    bo.locator("#reject").click(no_wait_after=True)
    for page in (ana, bo):
        page.wait_for_load_state("load")
        page.wait_for_selector(".flash, .error")
    with runtime.store.read() as conn:
        count = conn.execute(select(func.count()).select_from(decisions)).scalar_one()
    assert count == 1
    texts = [p.locator(".flash, .error").first.inner_text() for p in (ana, bo)]
    assert sum("recorded" in t for t in texts) == 1
    assert sum("already decided" in t for t in texts) == 1


def test_a_bad_token_is_refused_and_a_reviewer_cannot_open_the_dashboard(
    browser: Any, live: Any, signed_in: Any
) -> None:
    context = browser.new_context(base_url=live.url)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("API token").fill("slc_not-a-real-token")
    page.get_by_role("button", name="Sign in").click()
    assert "unknown token" in page.locator(".error").inner_text()
    context.close()
    reviewer = signed_in("dee")
    response = reviewer.goto("/dashboard")
    assert response is not None and response.status == 403


def test_cross_site_form_posts_and_other_pipelines_items_are_refused(
    runtime: Any, live: Any, signed_in: Any
) -> None:
    import httpx

    item_id = _submit_toy(runtime, "please review from elsewhere")
    (task,) = list_tasks(runtime.store)
    page = signed_in("eve", role="admin")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    forged = httpx.post(
        f"{live.url}/review/{task.id}/decide",
        data={"outcome": "approve"},
        cookies=cookies,
        headers={"Origin": "http://attacker.example"},
    )
    assert forged.status_code == 403
    with runtime.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(decisions)).scalar_one() == 0
    scoped = signed_in("sam", role="auditor", pipelines=["toy-steps"])
    response = scoped.goto(f"/items/{item_id}")
    assert response is not None and response.status == 404

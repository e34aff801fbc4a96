"""The API end to end: intake in every CloudEvents mode, the review queue, problems."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from sluice.execution import get_item


@pytest.fixture(autouse=True)
def _toys() -> None:
    import toy_pipelines  # noqa: F401


def event(i: int | str, text: str = "hello", source: str = "api") -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"ev-{i}",
        "source": source,
        "type": "t",
        "data": {"text": text},
    }


def test_structured_batched_and_binary_events_are_accepted_idempotently(
    client: Any, token_for: Any
) -> None:
    http = client(token_for("service"))
    one = http.post(
        "/v1/events",
        params={"pipeline": "toy-echo"},
        content=json.dumps(event(1)),
        headers={"content-type": "application/cloudevents+json"},
    )
    assert one.status_code == 202 and one.json()["accepted"] == 1
    batch = http.post("/v1/events", params={"pipeline": "toy-echo"}, json=[event(2), event(3)])
    assert batch.status_code == 202 and batch.json()["accepted"] == 2
    binary = http.post(
        "/v1/events",
        params={"pipeline": "toy-echo"},
        content=json.dumps({"text": "binary mode"}),
        headers={
            "content-type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": "ev-4",
            "ce-source": "api",
            "ce-type": "t",
        },
    )
    assert binary.status_code == 202, binary.text
    item_id = binary.json()["items"][0]["item_id"]
    again = http.post("/v1/events", params={"pipeline": "toy-echo"}, json=[event(1), event(2)])
    assert again.status_code == 202
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 2)
    detail = client(token_for("operator")).get(f"/v1/items/{item_id}").json()
    assert detail["event"]["data"]["text"] == "binary mode"
    assert detail["event"]["datacontenttype"] == "application/json"


def test_invalid_events_are_problems_with_their_position_and_good_ones_still_count(
    client: Any, token_for: Any
) -> None:
    http = client(token_for("service"))
    mixed = http.post(
        "/v1/events", params={"pipeline": "toy-echo"}, json=[event(1), {"id": "x"}, event(3)]
    )
    assert mixed.status_code == 202
    body = mixed.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert body["errors"][0]["line"] == 2 and body["errors"][0]["rejection_id"].startswith("rej_")
    bad = http.post("/v1/events", params={"pipeline": "toy-echo"}, json={"id": "x"})
    assert bad.status_code == 422
    broken = http.post("/v1/events", params={"pipeline": "toy-echo"}, content=b"{nope")
    assert broken.status_code == 422
    assert broken.headers["content-type"].startswith("application/problem+json")
    assert "invalid JSON" in broken.json()["title"]
    unknown = http.post("/v1/events", params={"pipeline": "nope"}, json=event(9))
    assert unknown.status_code == 404
    assert "unknown pipeline" in unknown.json()["title"]
    missing = http.post("/v1/events", json=event(9))
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "query.pipeline"


def test_oversize_requests_are_refused_before_they_are_read(runtime: Any, token_for: Any) -> None:
    import httpx

    from api_server import LiveServer
    from sluice.api import create_app

    settings = runtime.settings.model_copy(update={"max_request_bytes": 2000})
    with LiveServer(create_app(settings, runtime=runtime)) as live:
        headers = {"Authorization": f"Bearer {token_for('service')}"}
        big = [event(i, "x" * 100) for i in range(50)]
        response = httpx.post(
            f"{live.url}/v1/events", params={"pipeline": "toy-echo"}, json=big, headers=headers
        )
    assert response.status_code == 413 and response.json()["code"] == "request_too_large"


def test_a_reviewer_claims_and_decides_and_the_item_resumes(
    runtime: Any, client: Any, token_for: Any
) -> None:
    service = client(token_for("service"))
    posted = service.post(
        "/v1/events", params={"pipeline": "toy-echo"}, json=[event(1, "please review")]
    ).json()
    item_id = posted["items"][0]["item_id"]
    runtime.worker(["toy-echo"]).run(drain=True)

    ana = client(token_for("reviewer", name="ana", queues=["toy"]))
    (task,) = ana.get("/v1/review/tasks").json()
    context = ana.get(f"/v1/review/tasks/{task['id']}").json()
    assert context["message"]["text"] == "please review"
    claimed = ana.post(f"/v1/review/tasks/{task['id']}/claim", json={"lease_seconds": 60}).json()
    assert claimed["claimed_by"] == "ana" and claimed["state"] == "claimed"

    bo = client(token_for("reviewer", name="bo"))
    refused = bo.post(f"/v1/review/tasks/{task['id']}/decision", json={"outcome": "approve"})
    assert refused.status_code == 409 and "claimed by" in refused.json()["title"]

    decided = ana.post(
        f"/v1/review/tasks/{task['id']}/decision",
        json={"outcome": "correct", "label": "OTHER", "reason": "not shouting"},
    )
    assert decided.status_code == 201, decided.text
    second = ana.post(f"/v1/review/tasks/{task['id']}/decision", json={"outcome": "reject"})
    assert second.status_code == 409 and second.json()["code"] == "decision_conflict"

    stop = threading.Event()
    thread = threading.Thread(target=runtime.worker(["toy-echo"]).run, kwargs={"stop": stop})
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while get_item(runtime.store, item_id)["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
    auditor = client(token_for("auditor"))
    decision = auditor.get(f"/v1/review/tasks/{task['id']}").json()["decision"]
    assert (decision["reviewer"], decision["label"], decision["reason"]) == (
        "ana",
        "OTHER",
        "not shouting",
    )
    lineage = auditor.get(f"/v1/items/{item_id}/lineage").json()
    assert lineage["intact"] and lineage["action"]["payload"]["label"] == "OTHER"
    assert auditor.get("/v1/audit/verify").json()["ok"]


def test_reviewers_see_only_their_queues(runtime: Any, client: Any, token_for: Any) -> None:
    client(token_for("service")).post(
        "/v1/events", params={"pipeline": "toy-echo"}, json=[event(1, "please review")]
    )
    runtime.worker(["toy-echo"]).run(drain=True)
    other = client(token_for("reviewer", queues=["billing"]))
    assert other.get("/v1/review/tasks").json() == []
    task_id = client(token_for("admin")).get("/v1/review/tasks").json()[0]["id"]
    assert other.get(f"/v1/review/tasks/{task_id}").status_code == 404
    assert (
        other.post(f"/v1/review/tasks/{task_id}/decision", json={"outcome": "approve"}).status_code
        == 404
    )


def test_a_scoped_service_token_sees_only_its_pipelines(client: Any, token_for: Any) -> None:
    crm = client(token_for("service", pipelines=["toy-echo"]))
    assert crm.post("/v1/events", params={"pipeline": "toy-echo"}, json=event(1)).status_code == 202
    refused = crm.post("/v1/events", params={"pipeline": "toy-steps"}, json=event(2))
    assert refused.status_code == 403
    client(token_for("admin")).post("/v1/events", params={"pipeline": "toy-steps"}, json=event(3))
    assert {i["pipeline"] for i in crm.get("/v1/items").json()} == {"toy-echo"}


def test_summary_and_openapi(client: Any, token_for: Any) -> None:
    summary = client(token_for("operator")).get("/v1/metrics/summary").json()
    assert summary["review_backlog"] == 0 and summary["automation_rate"] is None
    spec = client().get("/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "/v1/events" in spec["paths"]


def test_audit_tasks_are_blind_over_the_api_until_graded(
    tmp_path: Any, database_url: str | None, model_cache: Any
) -> None:
    import httpx

    from api_server import LiveServer
    from helpers import make_settings
    from sluice.api import create_app
    from sluice.governance import create_token
    from sluice.runtime import Runtime

    settings = make_settings(tmp_path / "h", database_url, model_cache, audit_sample_rate=1.0)
    with Runtime(settings) as rt, LiveServer(create_app(settings, runtime=rt)) as live:
        reviewer, _ = create_token(rt.store, name="ana", role="reviewer", created_by="t")
        auditor, _ = create_token(rt.store, name="al", role="auditor", created_by="t")
        service, _ = create_token(rt.store, name="s", role="service", created_by="t")
        http = httpx.Client(base_url=live.url, timeout=30)
        bearer = lambda t: {"Authorization": f"Bearer {t}"}  # noqa: E731
        http.post(
            "/v1/events",
            params={"pipeline": "toy-echo"},
            json=[event(1, "hi")],
            headers=bearer(service),
        )
        rt.worker(["toy-echo"]).run(drain=True)
        (task,) = http.get(
            "/v1/review/tasks", params={"queue": "audit"}, headers=bearer(reviewer)
        ).json()
        assert task["kind"] == "audit" and "label" not in task["proposal"]
        context = http.get(f"/v1/review/tasks/{task['id']}", headers=bearer(reviewer)).json()
        assert (
            "label" not in context["task"]["proposal"]
            and "confidence" not in context["task"]["proposal"]
        )
        graded = http.post(
            f"/v1/review/tasks/{task['id']}/decision",
            json={"outcome": "correct", "label": "HI"},
            headers=bearer(reviewer),
        )
        assert graded.status_code == 201 and graded.json()["outcome"] == "approve"  # it agreed
        after = http.get(f"/v1/review/tasks/{task['id']}", headers=bearer(reviewer)).json()
        assert after["task"]["proposal"]["label"] == "HI"
        estimate = http.get(
            "/v1/metrics/audits", params={"pipeline": "toy-echo"}, headers=bearer(auditor)
        ).json()
        assert estimate["overall"]["audited"] == 1 and estimate["overall"]["precision"] == 1.0


def test_personal_data_is_masked_over_the_api_without_clearance(
    runtime: Any, client: Any, token_for: Any
) -> None:
    text = "please review: mail jo@example.com, call +44 20 7946 0958"
    posted = client(token_for("service")).post(
        "/v1/events", params={"pipeline": "toy-echo"}, json=[event(1, text)]
    )
    item_id = posted.json()["items"][0]["item_id"]
    runtime.worker(["toy-echo"]).run(drain=True)
    plain, cleared = client(token_for("admin")), client(token_for("admin", pii_clearance=True))
    task_id = plain.get("/v1/review/tasks").json()[0]["id"]
    # The message as it reaches a person: the task's context, the item, its lineage.
    views = {
        f"/v1/review/tasks/{task_id}": lambda body: body["message"],
        f"/v1/items/{item_id}": lambda body: body["event"]["data"],
        f"/v1/items/{item_id}/lineage": lambda body: body["event"]["data"],
    }
    for path, message in views.items():
        assert (
            message(plain.get(path).json())["text"] == "please review: mail <EMAIL>, call <PHONE>"
        )
        assert message(cleared.get(path).json())["text"] == text, path


def test_the_api_ignores_the_review_apps_session_cookie(client: Any, token_for: Any) -> None:
    http = client()
    http.cookies.set("sluice_token", token_for("admin"))
    assert http.get("/v1/whoami").status_code == 401


def test_a_blind_audit_cannot_be_approved_unseen(
    tmp_path: Any, database_url: str | None, model_cache: Any
) -> None:
    from helpers import make_settings
    from sluice.errors import InvalidDecisionError
    from sluice.execution import get_pipeline as pipeline_named
    from sluice.execution import parse_jsonl, submit_lines
    from sluice.review import decide as record
    from sluice.review import list_tasks
    from sluice.runtime import Runtime

    settings = make_settings(tmp_path / "h", database_url, model_cache, audit_sample_rate=1.0)
    with Runtime(settings) as rt:
        lines = [json.dumps(event(1, "hi"))]
        submit_lines(
            rt.store, pipeline_named("toy-echo"), parse_jsonl(lines, max_bytes=10_000), origin="t"
        )
        rt.worker(["toy-echo"]).run(drain=True)
        (task,) = list_tasks(rt.store, queue="audit")
        with pytest.raises(InvalidDecisionError, match="blind audit"):
            record(rt.store, task.id, reviewer="ana", outcome="approve")


def test_a_reviewer_escalates_instead_of_deciding_and_a_lead_decides(
    runtime: Any, client: Any, token_for: Any
) -> None:
    posted = client(token_for("service")).post(
        "/v1/events", params={"pipeline": "toy-echo"}, json=[event(1, "please review, tricky")]
    )
    item_id = posted.json()["items"][0]["item_id"]
    runtime.worker(["toy-echo"]).run(drain=True)
    ana = client(token_for("reviewer", name="ana", queues=["toy"]))
    (task,) = ana.get("/v1/review/tasks").json()
    up = ana.post(f"/v1/review/tasks/{task['id']}/escalate", json={"reason": "not sure"})
    assert up.status_code == 200, up.text
    assert (up.json()["state"], up.json()["queue"]) == ("escalated", "escalations")
    assert ana.get("/v1/review/tasks").json() == []  # out of ana's queue now
    lead = client(token_for("reviewer", name="lead", queues=["escalations"]))
    (seen,) = lead.get("/v1/review/tasks").json()
    assert seen["id"] == task["id"]
    decided = lead.post(f"/v1/review/tasks/{task['id']}/decision", json={"outcome": "approve"})
    assert decided.status_code == 201
    assert get_item(runtime.store, item_id)["status"] == "waiting_review"  # resumes in a worker

"""The run route's read path against a real ``flowledger serve`` process: an ETag that
changes with every kind of write and a 304 for an unchanged run; previews of large step
payloads, whole in the step route."""

from __future__ import annotations

from pathlib import Path

import pytest

import flowledger as fl
from tests.helpers import checkpoints
from tests.helpers.server import serving


def _token(ledger: fl.Ledger) -> str:
    return ledger.create_token("default").secret


def test_the_etag_changes_with_every_write_and_an_unchanged_run_is_304(
        db_url: str) -> None:
    with fl.Ledger(db_url) as ledger, serving(db_url) as server, \
            server.client(_token(ledger)) as api:
        walk = checkpoints.fresh()
        handle = ledger.start(checkpoints.flow)
        seen: list[str] = []

        def look(name: str) -> None:
            previous = seen[-1] if seen else '"none"'
            answer = api.get(f"/runs/{handle.id}", headers={"If-None-Match": previous})
            assert answer.status_code == 200, f"{name}: {answer.status_code} {answer.text}"
            tag = answer.headers["etag"]
            assert tag not in seen, f"{name}: the ETag did not change"
            assert answer.json()["revision"] in tag
            again = api.get(f"/runs/{handle.id}", headers={"If-None-Match": tag})
            assert again.status_code == 304, f"{name}: unchanged run answered {again}"
            assert again.headers["etag"] == tag and again.content == b""
            seen.append(tag)

        walk.walk(look)
        assert handle.result(timeout=60) == "done"
        final = api.get(f"/runs/{handle.id}", headers={"If-None-Match": seen[-1]})
        assert final.status_code == 200 and final.json()["status"] == "completed"
        tag = final.headers["etag"]
        assert tag not in seen
        # a list of tags, and *, work as HTTP says
        assert api.get(f"/runs/{handle.id}",
                       headers={"If-None-Match": f'"x", {tag}'}).status_code == 304
        assert api.get(f"/runs/{handle.id}", headers={"If-None-Match": "*"}).status_code == 304

        # cancel and resume (from the server's own routes) change it too
        queued = ledger.submit(checkpoints.flow)
        before = api.get(f"/runs/{queued.id}").headers["etag"]
        assert api.post(f"/runs/{queued.id}/cancel").status_code == 200
        cancelled = api.get(f"/runs/{queued.id}", headers={"If-None-Match": before})
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert api.post(f"/runs/{queued.id}/resume", json={}).status_code == 202
        resumed = api.get(f"/runs/{queued.id}",
                          headers={"If-None-Match": cancelled.headers["etag"]})
        assert resumed.status_code == 200 and resumed.json()["status"] == "pending"
        # another owner's run is a 404, ETag or not
        other = ledger.create_token("someone-else").secret
        with server.client(other) as stranger:
            assert stranger.get(f"/runs/{queued.id}",
                                headers={"If-None-Match": "*"}).status_code == 404


@fl.step
def big(size: int) -> str:
    return "x" * size


@fl.step
def small() -> dict[str, int]:
    return {"ok": 1}


@fl.workflow(name="http-preview")
def payloads(size: int) -> int:
    big(size)
    big(200_000)
    return small()["ok"]


def test_a_run_answer_previews_large_payloads_and_the_step_route_has_them_whole(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLEDGER_ARTIFACTS_URL", str(tmp_path / "artifacts"))
    mib = 1024 * 1024
    with fl.Ledger(db_url) as ledger:
        handle = ledger.start(payloads, mib)
        handle.result()
        token = _token(ledger)
    with serving(db_url) as server, server.client(token) as api:
        answer = api.get(f"/runs/{handle.id}")
        assert answer.status_code == 200
        assert len(answer.content) < 64 * 1024  # two 16 KiB previews, not 1.2 MiB
        steps = answer.json()["steps"]
        assert [s["output_truncated"] for s in steps] == [True, True, False]
        assert len(steps[0]["output"]) == 16 * 1024 and steps[0]["output"].startswith('"xxx')
        assert steps[2]["output"] == {"ok": 1}
        for position, size in ((1, mib), (2, 200_000)):
            whole = api.get(f"/runs/{handle.id}/steps/{position}")
            assert whole.status_code == 200
            assert whole.json()["output"] == "x" * size
            assert whole.json()["output_truncated"] is False


def test_a_run_list_answers_304_while_unchanged_and_filters_by_queue(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        token = _token(ledger)
        first = ledger.submit(payloads, 10, queue="reports")
        ledger.submit(payloads, 20)
    with fl.Ledger(db_url) as ledger, serving(db_url) as server, \
            server.client(token) as api:
        listing = api.get("/runs", params={"queue": "reports"})
        assert listing.status_code == 200
        assert [r["id"] for r in listing.json()["runs"]] == [first.id]
        assert listing.json()["runs"][0]["own_usage"] == {"calls": 0, "tokens": 0,
                                                          "cost_usd": None}
        tag = listing.headers["etag"]
        unchanged = api.get("/runs", params={"queue": "reports"},
                            headers={"If-None-Match": tag})
        assert unchanged.status_code == 304 and unchanged.content == b""
        # another listing has its own tag; a change on the page changes it
        assert api.get("/runs", headers={"If-None-Match": tag}).status_code == 200
        ledger.cancel(first.id)
        changed = api.get("/runs", params={"queue": "reports"},
                          headers={"If-None-Match": tag})
        assert changed.status_code == 200 and changed.headers["etag"] != tag
        assert changed.json()["runs"][0]["status"] == "cancelled"
        # a new run on the page changes it too
        ledger.submit(payloads, 30, queue="reports")
        grown = api.get("/runs", params={"queue": "reports"},
                        headers={"If-None-Match": changed.headers["etag"]})
        assert grown.status_code == 200 and len(grown.json()["runs"]) == 2

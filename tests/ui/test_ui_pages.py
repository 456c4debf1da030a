"""The UI's pages in a real browser: the runs list (filters, pages, live rows), a run's
page (timeline, step panel, live updates, actions), compare and analytics."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

import flowledger as fl
from tests.helpers import ui_app
from tests.helpers.ui_server import LocalUi, team_server
from tests.helpers.workers import wait_until
from tests.ui.conftest import errors_of, screenshot
from tests.ui.test_ui_access import login


def open_ui(db_url: str, new_context: Any, *options: str) -> tuple[LocalUi, Page]:
    ui = LocalUi(db_url, *options)
    page = new_context().new_page()
    page.goto(ui.login_url)
    expect(page).to_have_url(re.compile(r"/ui/runs$"))
    return ui, page


def rows(page: Page) -> Any:
    return page.locator("#runs-body tr[data-id]")


def test_the_runs_list_filters_pages_and_shows_new_runs_live(db_url: str,
                                                             new_context: Any) -> None:
    with fl.Ledger(db_url) as ledger:
        for n in range(52):
            ledger.run(ui_app.pipeline, n, tags=["batch"] if n % 2 else [])
        failed = []
        for _ in range(3):
            failed.append(ui_app.finished(ledger.start(ui_app.failing)))
        ui, page = open_ui(db_url, new_context)
        try:
            problems = errors_of(page)
            expect(rows(page)).to_have_count(50)
            # status filter, kept in the URL
            page.get_by_role("checkbox", name="failed", exact=True).check()
            page.get_by_role("button", name="Apply").click()
            expect(page).to_have_url(re.compile(r"status=failed"))
            expect(rows(page)).to_have_count(3)
            assert sorted(rows(page).evaluate_all("rs => rs.map(r => r.dataset.id)")) \
                == sorted(failed)
            expect(page.locator("#runs-body .status")).to_have_text(["✖ failed"] * 3)
            # tag and workflow filters combine
            page.goto(f"{ui.base}/ui/runs?tag=batch&workflow=ui_pipeline")
            expect(rows(page)).to_have_count(26)
            # keyset pages, and Back
            page.goto(f"{ui.base}/ui/runs")
            first_page = rows(page).evaluate_all("rs => rs.map(r => r.dataset.id)")
            page.get_by_role("link", name="Older →").click()
            expect(page).to_have_url(re.compile(r"cursor="))
            expect(rows(page)).to_have_count(5)
            second = rows(page).evaluate_all("rs => rs.map(r => r.dataset.id)")
            assert not set(first_page) & set(second)
            page.go_back()
            expect(rows(page)).to_have_count(50)
            # a run started now appears without a reload
            page.evaluate("window.__stay = 'same page'")
            fresh = ui_app.finished(ledger.start(ui_app.pipeline, 99))
            expect(page.locator(f"#runs-body tr[data-id='{fresh}']")).to_be_visible()
            assert page.evaluate("window.__stay") == "same page"
            assert problems == []
        finally:
            ui.stop()


def test_a_run_page_shows_its_timeline_steps_attempts_and_errors(db_url: str,
                                                                 new_context: Any) -> None:
    with fl.Ledger(db_url) as ledger:
        run = ui_app.finished(ledger.start(ui_app.pipeline, 4, "summarise", 2000))
        broken = ui_app.finished(ledger.start(ui_app.failing, "bad row 7"))
        parent = ui_app.finished(ledger.start(ui_app.parent, 5))
    ui, page = open_ui(db_url, new_context)
    try:
        problems = errors_of(page)
        page.goto(f"{ui.base}/ui/runs/{run}")
        timeline = page.locator("#timeline")
        expect(timeline).to_have_attribute("data-ready", "1")
        expect(timeline).to_have_attribute("data-bars", "4")
        expect(timeline).to_have_attribute("data-failed-attempts", "1")
        header = page.locator("#run-header")
        expect(header).to_contain_text("2,500")        # tokens: 2000 in + 500 out
        expect(header.locator(".big-status")).to_contain_text("completed")
        expect(page.locator("tr.step-row")).to_have_count(4)
        # the retried step: its failed attempt with the error, in the step panel
        page.locator("tr.step-row", has_text="wobbly").get_by_role("link").first.click()
        panel = page.locator("#step-panel")
        expect(panel.get_by_role("heading", name="Step 2 · wobbly")).to_be_visible()
        expect(panel).to_contain_text("ConnectionError")
        expect(panel).to_contain_text("upstream reset")
        expect(panel.locator("pre.traceback").first).to_contain_text("raise ConnectionError",
                                                                     use_inner_text=False)
        # what each attempt logged, under its attempt
        logs = panel.locator("[data-testid=step-logs]")
        expect(logs.locator(".logs-attempt")).to_have_text(["Attempt 1", "Attempt 2"])
        expect(logs.locator(".logs").first).to_contain_text("fetching item-4, attempt 1")
        expect(logs.locator(".logs").last).to_contain_text("fetching item-4, attempt 2")
        expect(logs.locator(".level-warning .log-level").first).to_have_text("WARNING")
        # an output as a tree, and the LLM call with its tokens
        page.locator("tr.step-row", has_text="ask_model").get_by_role("link").first.click()
        expect(panel.get_by_role("heading", name="Step 3 · ask_model")).to_be_visible()
        expect(panel.locator(".json-tree").last).to_contain_text("answer to summarise 4")
        expect(panel.get_by_role("cell", name="gpt-4o-mini")).to_be_visible()
        # the artifact is listed and downloads
        link = page.get_by_role("link", name="Download")
        expect(link).to_have_count(1)
        assert b"# Report" in page.request.get(
            f"{ui.base}/ui/runs/{run}/artifacts/report.md?download=true").body()
        expect(page.locator("#ctx-title + table")).to_contain_text("last_prompt")

        # a failed run: its error in the header, the traceback in the panel
        page.goto(f"{ui.base}/ui/runs/{broken}")
        expect(page.locator("#run-header .error-box")).to_contain_text("bad row 7")
        page.locator("tr.step-row", has_text="explode").get_by_role("link").first.click()
        expect(panel.locator("[data-testid=step-error]")).to_contain_text("ValueError")
        expect(panel.locator("pre.traceback").first).to_contain_text("raise ValueError",
                                                                     use_inner_text=False)

        # a child run opens as a nested group in the parent's timeline
        page.goto(f"{ui.base}/ui/runs/{parent}")
        expect(timeline).to_have_attribute("data-bars", "2")
        expect(timeline).to_have_attribute("data-rows", "2")
        timeline.locator("canvas").click(position={"x": 40, "y": 26 + 22 + 11})
        expect(timeline).to_have_attribute("data-rows", "6")
        assert problems == []
    finally:
        ui.stop()


def test_a_running_run_updates_in_place_until_it_completes(db_url: str, tmp_path: Path,
                                                           new_context: Any) -> None:
    gates = [str(tmp_path / f"gate{i}") for i in range(3)]
    with fl.Ledger(db_url) as ledger:
        token = ledger.create_token("default").secret
        server = team_server(db_url)
        try:
            run = ledger.submit(ui_app.gated_flow, gates).id
            wait_until(lambda: len(ledger.get(run).steps) == 1, what="step 1 to start")
            page = login(new_context(), f"http://127.0.0.1:{server.port}", token)
            problems = errors_of(page)
            page.goto(f"http://127.0.0.1:{server.port}/ui/runs/{run}")
            page.evaluate("window.__stay = 'same page'")
            expect(page.locator("#run-header .big-status")).to_contain_text("running")
            expect(page.locator("tr.step-row")).to_have_count(1)
            for number, gate in enumerate(gates, 1):
                Path(gate).touch()
                if number < len(gates):
                    expect(page.locator("tr.step-row")).to_have_count(number + 1)
                    expect(page.locator("#timeline")).to_have_attribute(
                        "data-bars", str(number + 1))
            expect(page.locator("#run-header .big-status")).to_contain_text("completed")
            expect(page.locator("tr.step-row .status")).to_have_text(["✔ completed"] * 3)
            expect(page.locator("#timeline")).to_have_attribute("data-status", "completed")
            assert page.evaluate("window.__stay") == "same page"  # never reloaded
            assert problems == []
        finally:
            server.stop()


def test_cancel_resume_and_fork_from_the_ui(db_url: str, tmp_path: Path,
                                            new_context: Any) -> None:
    gates = [str(tmp_path / "a"), str(tmp_path / "b")]
    with fl.Ledger(db_url) as ledger:
        token = ledger.create_token("default").secret
        source = ui_app.finished(ledger.start(ui_app.pipeline, 6, "original"))
        server = team_server(db_url)
        base = f"http://127.0.0.1:{server.port}"
        try:
            page = login(new_context(), base, token)
            page.on("dialog", lambda dialog: dialog.accept())
            # cancel a run held at its first gate
            held = ledger.submit(ui_app.gated_flow, gates).id
            wait_until(lambda: ledger.get(held).status == fl.RunStatus.RUNNING,
                       what="the gated run to start")
            page.goto(f"{base}/ui/runs/{held}")
            page.get_by_role("button", name="Cancel").click()
            expect(page.get_by_role("status")).to_contain_text("Cancelled")
            assert ledger.get(held).status == fl.RunStatus.CANCELLED
            # resume it: a worker continues it from its first unfinished step
            for gate in gates:
                Path(gate).touch()
            page.get_by_role("button", name="Resume").click()
            expect(page.get_by_role("status")).to_contain_text("Resumed")
            wait_until(lambda: ledger.get(held).status == fl.RunStatus.COMPLETED,
                       what="the resumed run to complete")
            resumed = ledger.get(held)
            assert resumed.resumed_at is not None and resumed.output == 3

            # fork from step 3 with a changed input
            page.goto(f"{base}/ui/runs/{source}")
            page.get_by_role("button", name="Fork…").click()
            dialog = page.locator("#fork-dialog")
            dialog.get_by_label("From step").select_option("3")
            dialog.get_by_label(re.compile("Inputs to change")).fill('{"prompt": "forked"}')
            dialog.get_by_role("button", name="Fork", exact=True).click()
            expect(page.get_by_role("status")).to_contain_text("Fork from step 3")
            fork_id = page.url.split("/ui/runs/")[1].split("?")[0]
            wait_until(lambda: ledger.get(fork_id).status == fl.RunStatus.COMPLETED,
                       what="the fork to complete")
            fork = ledger.get(fork_id)
            assert (fork.forked_from, fork.forked_from_position) == (source, 3)
            assert fork.steps[2].output == "answer to forked 6"
            assert fork.steps[0].output == ledger.get(source).steps[0].output

            # re-run with the same inputs
            page.goto(f"{base}/ui/runs/{source}")
            page.get_by_role("button", name="Re-run").click()
            expect(page.get_by_role("status")).to_contain_text("Re-run")
            rerun = page.url.split("/ui/runs/")[1].split("?")[0]
            wait_until(lambda: ledger.get(rerun).status == fl.RunStatus.COMPLETED,
                       what="the re-run to complete")
            assert ledger.get(rerun).inputs == ledger.get(source).inputs
        finally:
            server.stop()


def test_a_waiting_run_shows_what_it_waits_for_and_takes_its_event_from_the_ui(
        db_url: str, new_context: Any) -> None:
    with fl.Ledger(db_url) as ledger:
        token = ledger.create_token("default").secret
        server = team_server(db_url)
        base = f"http://127.0.0.1:{server.port}"
        try:
            page = login(new_context(), base, token)
            waiting = ledger.submit(ui_app.approval, 3).id
            wait_until(lambda: ledger.get(waiting).status == fl.RunStatus.WAITING,
                       what="the run to wait for its event")
            page.goto(f"{base}/ui/runs/{waiting}")
            expect(page.locator(".big-status")).to_contain_text("waiting")
            expect(page.locator(".waiting-note")).to_contain_text("Waiting for event approve")
            screenshot(page, "run-waiting")
            payload = page.get_by_label("Payload of approve (JSON)")
            payload.fill('{"approved": "perhaps", "by": "ana"}')
            page.get_by_role("button", name="Send event").click()
            expect(page.locator("body")).to_contain_text("does not fit the model")
            assert ledger.get(waiting).status == fl.RunStatus.WAITING
            assert ledger.sent_events(waiting) == []
            page.goto(f"{base}/ui/runs/{waiting}")
            page.get_by_label("Payload of approve (JSON)").fill(
                '{"approved": true, "by": "ana"}')
            page.get_by_role("button", name="Send event").click()
            expect(page.get_by_role("status")).to_contain_text("Sent event 'approve'")
            wait_until(lambda: ledger.get(waiting).status == fl.RunStatus.COMPLETED,
                       what="the run to receive its event")
            assert ledger.get(waiting).output == "approved by ana"
        finally:
            server.stop()


def test_pause_and_resume_from_the_ui(db_url: str, tmp_path: Path, new_context: Any) -> None:
    gates = [str(tmp_path / "a"), str(tmp_path / "b")]
    with fl.Ledger(db_url) as ledger:
        token = ledger.create_token("default").secret
        server = team_server(db_url)
        base = f"http://127.0.0.1:{server.port}"
        try:
            page = login(new_context(), base, token)
            page.on("dialog", lambda dialog: dialog.accept())
            held = ledger.submit(ui_app.gated_flow, gates).id
            wait_until(lambda: ledger.get(held).status == fl.RunStatus.RUNNING,
                       what="the gated run to start")
            page.goto(f"{base}/ui/runs/{held}")
            page.get_by_role("button", name="Pause").click()
            expect(page.get_by_role("status")).to_contain_text("Paused")
            Path(gates[0]).touch()  # the step in flight finishes; the next never starts

            def let_go() -> bool:
                run = ledger.get(held)
                return run.status == fl.RunStatus.PAUSED and run.executor is None

            wait_until(let_go, what="the paused run to be let go")
            assert [s.status.value for s in ledger.get(held).steps] == ["completed"]
            page.goto(f"{base}/ui/runs/{held}")
            expect(page.locator(".paused-note")).to_contain_text("Paused")
            expect(page.locator(".big-status")).to_contain_text("paused")
            Path(gates[1]).touch()
            page.get_by_role("button", name="Resume").click()
            expect(page.get_by_role("status")).to_contain_text("Resumed")
            wait_until(lambda: ledger.get(held).status == fl.RunStatus.COMPLETED,
                       what="the resumed run to complete")
            assert ledger.get(held).output == 3
        finally:
            server.stop()

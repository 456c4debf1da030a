"""Compare, analytics and big runs in a real browser; accessibility (axe-core) and
screenshots of every page in both themes."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

import flowledger as fl
from tests.helpers import ui_app
from tests.ui.conftest import errors_of, screenshot, serious_violations
from tests.ui.test_ui_pages import open_ui


def test_compare_two_runs_picked_on_the_list(db_url: str, new_context: Any) -> None:
    with fl.Ledger(db_url) as ledger:
        a = ui_app.finished(ledger.start(ui_app.pipeline, 7, "first question"))
        b = ui_app.finished(ledger.start(ui_app.pipeline, 7, "second question"))
    ui, page = open_ui(db_url, new_context)
    try:
        compare = page.get_by_role("button", name="Compare selected")
        expect(compare).to_be_disabled()
        page.get_by_label(f"Select run {a[:13]}").check()
        page.get_by_label(f"Select run {b[:13]}").check()
        expect(compare).to_be_enabled()
        compare.click()
        expect(page).to_have_url(re.compile(rf"/ui/compare\?a={a}&b={b}"))
        steps = page.locator("table.compare-steps tbody tr")
        expect(steps).to_have_count(4)
        expect(steps.nth(0)).to_contain_text("same")          # load: same input, same output
        changed = steps.nth(2)
        expect(changed).to_contain_text("ask_model")
        changed.get_by_text("changed").click()
        expect(changed.locator("pre.diff .del")).to_contain_text("first question")
        expect(changed.locator("pre.diff .add")).to_contain_text("second question")
    finally:
        ui.stop()


def test_analytics_charts_add_up_to_what_the_ledger_holds(db_url: str,
                                                         new_context: Any) -> None:
    with fl.Ledger(db_url) as ledger:
        for n in range(3):
            ui_app.finished(ledger.start(ui_app.pipeline, n, "q", 1000 * (n + 1)))
        for _ in range(2):
            ui_app.finished(ledger.start(ui_app.failing))
        usage = ledger.usage(group_by="model")
        tokens = sum(g.totals.input_tokens + g.totals.output_tokens for g in usage)
        cost = sum(g.totals.cost_usd or 0.0 for g in usage)
    assert tokens == (1000 + 2000 + 3000) * 5 // 4
    ui, page = open_ui(db_url, new_context)
    try:
        problems = errors_of(page)
        page.goto(f"{ui.base}/ui/analytics?window=1h")
        expect(page.get_by_test_id("total-runs")).to_have_text("5")
        expect(page.get_by_test_id("success-rate")).to_have_text("60.0%")
        expect(page.get_by_test_id("total-tokens")).to_have_text(f"{tokens:,}")
        runs_chart = page.locator("[data-chart=runs]")
        expect(runs_chart.locator("canvas")).to_have_count(1)
        expect(runs_chart).to_have_attribute("data-total", "5")
        expect(runs_chart).to_have_attribute("data-series", "completed,failed")
        expect(page.locator("[data-chart=tokens_by_workflow]")).to_have_attribute(
            "data-total", str(tokens))
        drawn = float(page.locator("[data-chart=cost_by_model]").get_attribute("data-total")
                      or "nan")
        assert drawn == pytest.approx(cost, rel=1e-6) and cost > 0
        expect(page.locator("section", has_text="Most failing steps")).to_contain_text(
            "explode")
        # narrowing to a workflow narrows the totals
        page.goto(f"{ui.base}/ui/analytics?window=1h&workflow=ui_failing")
        expect(page.get_by_test_id("total-runs")).to_have_text("2")
        expect(page.get_by_test_id("success-rate")).to_have_text("0.0%")
        assert problems == []
    finally:
        ui.stop()


def test_a_1000_step_run_page_is_interactive(db_url: str, new_context: Any) -> None:
    with fl.Ledger(db_url) as ledger:
        run = ui_app.finished(ledger.start(ui_app.many, 1000))
    ui, page = open_ui(db_url, new_context)
    try:
        problems = errors_of(page)
        page.goto(f"{ui.base}/ui/runs/{run}")
        timeline = page.locator("#timeline")
        expect(timeline).to_have_attribute("data-bars", "1000")
        expect(page.locator("tr.step-row")).to_have_count(500)   # a page of steps
        expect(page.get_by_text("Steps 1\u2013500 of 1000")).to_be_visible()
        # the timeline scrolls and zooms; a click opens the step under the pointer
        canvas = timeline.locator("canvas")
        canvas.hover(position={"x": 600, "y": 100})
        page.mouse.wheel(0, 22 * 200)
        page.get_by_role("button", name="Zoom in").click()
        canvas.click(position={"x": 40, "y": 26 + 11})
        expect(page.locator("#step-panel h2")).to_have_text(re.compile(r"Step 2\d\d · tick"))
        page.get_by_role("link", name="Later →").click()
        expect(page.locator("tr.step-row").first).to_contain_text("501")
        assert problems == []
    finally:
        ui.stop()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_pages_pass_axe_and_are_captured_in_both_themes(backend: str, tmp_path: Any,
                                                        new_context: Any) -> None:
    db_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with fl.Ledger(db_url) as ledger:
        a = ui_app.finished(ledger.start(ui_app.pipeline, 1, "first", tags=["nightly"]))
        b = ui_app.finished(ledger.start(ui_app.pipeline, 2, "second", tags=["nightly"]))
        ui_app.finished(ledger.start(ui_app.failing, "bad row 7"))
        ui_app.finished(ledger.start(ui_app.parent, 3))
    ui, page = open_ui(db_url, new_context)
    try:
        state = page.context.storage_state()
        pages = {"runs": "/ui/runs", "run": f"/ui/runs/{a}",
                 "compare": f"/ui/compare?a={a}&b={b}", "analytics": "/ui/analytics",
                 "workers": "/ui/workers"}
        for theme in ("light", "dark"):
            context = new_context(theme)
            context.add_cookies(state["cookies"])
            view = context.new_page()
            for name, path in pages.items():
                view.goto(ui.base + path)
                expect(view.locator("body")).to_have_attribute("data-ready", "1")
                if name == "run":
                    expect(view.locator("#timeline")).to_have_attribute("data-ready", "1")
                    view.locator("tr.step-row", has_text="wobbly").get_by_role(
                        "link").first.click()
                    expect(view.locator("#step-panel h2")).to_contain_text("wobbly")
                if name == "analytics":
                    expect(view.locator("[data-chart=runs] canvas")).to_have_count(1)
                found = serious_violations(view)
                assert found == [], f"{name} ({theme}): {found}"
                screenshot(view, f"{name}-{theme}")
    finally:
        ui.stop()


def test_the_workers_page_shows_queue_limits_and_rates(db_url: str, new_context: Any) -> None:
    with fl.Ledger(db_url) as ledger:
        ledger.set_queue_limits("ui-limited", concurrency=3, rate="100/s", key_rate="5/min")
        ledger.submit(ui_app.pipeline, 1, queue="ui-limited")
    ui, page = open_ui(db_url, new_context)
    try:
        page.goto(f"{ui.base}/ui/workers")
        row = page.locator("tr", has_text="ui-limited")
        expect(row.locator("[data-testid=queue-rate]")).to_have_text("100/s")
        expect(row).to_contain_text("5/min")
        expect(row.locator("td").nth(7)).to_have_text("3")
    finally:
        ui.stop()

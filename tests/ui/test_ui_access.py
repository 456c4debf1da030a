"""Who gets into the UI: the one-time URL of `flowledger ui`, API-token logins under
`flowledger serve`, owner scoping, CSRF on every action."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.sync_api import expect

import flowledger as fl
from tests.helpers import ui_app
from tests.helpers.ui_server import LocalUi, team_server
from tests.ui.conftest import errors_of


def test_flowledger_ui_logs_in_once_with_the_url_it_prints(db_url: str,
                                                            new_context: Any) -> None:
    with fl.Ledger(db_url) as ledger:
        run = ui_app.finished(ledger.start(ui_app.pipeline, 1))
    ui = LocalUi(db_url)
    try:
        assert ui.login_url.startswith(f"http://127.0.0.1:{ui.port}/ui/login?token=")
        page = new_context().new_page()
        problems = errors_of(page)
        page.goto(ui.login_url)
        expect(page).to_have_url(re.compile(r"/ui/runs$"))
        expect(page.locator(f"tr[data-id='{run}']")).to_be_visible()
        assert problems == []

        # someone else who reads the URL later gets nothing from it
        other = new_context().new_page()
        answer = other.goto(ui.login_url)
        assert answer is not None and answer.status == 401
        expect(other.get_by_role("alert")).to_contain_text("already used")
        other.goto(f"{ui.base}/ui/runs/{run}")
        expect(other).to_have_url(re.compile(r"/ui/login\?next="))
        other.fill("#token", "not-the-token")
        other.get_by_role("button", name="Log in").click()
        expect(other.get_by_role("alert")).to_contain_text("not valid")
        assert other.context.cookies() == []

        # logging out ends the session for good
        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(re.compile(r"/ui/login$"))
        page.goto(f"{ui.base}/ui/runs")
        expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    finally:
        ui.stop()


def login(context: Any, base: str, token: str) -> Any:
    page = context.new_page()
    page.goto(f"{base}/ui/runs")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.fill("#token", token)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/ui/runs$"))
    return page


def test_serve_logs_in_with_api_tokens_and_shows_only_the_owners_runs(
        db_url: str, new_context: Any) -> None:
    with fl.Ledger(db_url) as ledger:
        alice_run = ui_app.finished(ledger.start(ui_app.pipeline, 1, owner="alice"))
        bob_run = ui_app.finished(ledger.start(ui_app.pipeline, 2, owner="bob"))
        alice = ledger.create_token("alice")
        bob = ledger.create_token("bob").secret
        server = team_server(db_url)
        try:
            base = f"http://127.0.0.1:{server.port}"
            wrong = new_context().new_page()
            wrong.goto(f"{base}/ui/login")
            wrong.fill("#token", "fl_bogus_token")
            wrong.get_by_role("button", name="Log in").click()
            expect(wrong.get_by_role("alert")).to_contain_text("not valid")

            context = new_context()
            page = login(context, base, alice.secret)
            expect(page.locator(f"tr[data-id='{alice_run}']")).to_be_visible()
            expect(page.locator(f"tr[data-id='{bob_run}']")).to_have_count(0)
            cookie = next(c for c in context.cookies() if c["name"] == "flowledger_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert not cookie["secure"]  # plain http here; https sets Secure:
            behind_proxy = httpx.post(f"{base}/ui/login", data={"token": bob},
                                      headers={"X-Forwarded-Proto": "https"})
            assert behind_proxy.status_code == 303
            set_cookie = behind_proxy.headers["set-cookie"].lower()
            assert "secure" in set_cookie and "httponly" in set_cookie
            assert "samesite=strict" in set_cookie

            answer = page.goto(f"{base}/ui/runs/{bob_run}")
            assert answer is not None and answer.status == 404
            expect(page.get_by_role("heading", name="Not found")).to_be_visible()
            for path in (f"/ui/runs/{bob_run}/steps/1", f"/ui/runs/{bob_run}/timeline.json",
                         f"/ui/compare?a={alice_run}&b={bob_run}"):
                assert page.request.get(base + path).status == 404, path

            # revoking the token ends its sessions at the next request
            ledger.revoke_token(alice.info.id)
            page.goto(f"{base}/ui/runs")
            expect(page).to_have_url(re.compile(r"/ui/login\?next="))

            bob_page = login(new_context(), base, bob)
            expect(bob_page.locator(f"tr[data-id='{bob_run}']")).to_be_visible()
        finally:
            server.stop()


def test_an_action_without_the_sessions_csrf_token_is_refused(db_url: str,
                                                               new_context: Any) -> None:
    with fl.Ledger(db_url) as ledger:
        # a queue no worker takes: the run stays pending until cancelled
        run = ledger.submit(ui_app.pipeline, 3, queue="ui-nobody").id
        token = ledger.create_token("default").secret
        server = team_server(db_url)
        try:
            base = f"http://127.0.0.1:{server.port}"
            page = login(new_context(), base, token)
            page.goto(f"{base}/ui/runs/{run}")
            forged = page.request.post(f"{base}/ui/runs/{run}/cancel",
                                       form={"csrf": "0" * 64})
            assert forged.status == 403
            bare = page.request.post(f"{base}/ui/runs/{run}/cancel")
            assert bare.status == 403
            fork = page.request.post(f"{base}/ui/runs/{run}/fork", form={"position": "1"})
            assert fork.status == 403
            assert ledger.get(run).status == fl.RunStatus.PENDING
            assert len(ledger.runs(workflow="ui_pipeline").runs) == 1  # no fork was made

            page.once("dialog", lambda dialog: dialog.accept())
            page.get_by_role("button", name="Cancel").click()
            expect(page.get_by_role("status")).to_contain_text("Cancelled")
            assert ledger.get(run).status == fl.RunStatus.CANCELLED
        finally:
            server.stop()

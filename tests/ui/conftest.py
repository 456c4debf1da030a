"""Browser tests of the web UI: Debian's Chromium driven by Playwright, against real
``flowledger ui`` / ``flowledger serve`` processes.

The browser is /usr/bin/chromium (``scripts/test`` installs it; Playwright cannot
download one here). Without it the UI tests fail with that message; they never skip.
Screenshots of each page, in both themes, go to ``test-output/ui/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.helpers.procs import ROOT

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "test-output" / "ui"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"

expect.set_options(timeout=20_000)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not CHROMIUM.exists():
        pytest.fail("the UI tests need Debian's chromium at /usr/bin/chromium: run "
                    "scripts/test (it installs it) or `apt-get install chromium`",
                    pytrace=False)
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM)}


@pytest.fixture
def new_context(browser: Browser) -> Any:
    """Contexts (browser profiles with their own cookies) made by the test, closed
    after it."""
    made: list[BrowserContext] = []

    def make(theme: str = "light") -> BrowserContext:
        context = browser.new_context(viewport={"width": 1440, "height": 900},
                                      color_scheme=theme)  # type: ignore[arg-type]
        context.set_default_timeout(20_000)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


def errors_of(page: Page) -> list[str]:
    """Uncaught script errors of ``page`` (collected from now on)."""
    found: list[str] = []
    page.on("pageerror", lambda error: found.append(str(error)))
    return found


def screenshot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ["violations"]});
        return r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
          .map(v => v.id + ": " + v.help + " — " + v.nodes.slice(0, 3)
               .map(n => n.target.join(" ")).join(" | "));
    }""")
    return list(result)

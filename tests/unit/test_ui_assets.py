"""The UI's files: every asset a template loads ships in the package, vendored files
match the versions and checksums VENDORED.md gives, and values are shown in human
units."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from pathlib import Path

import pytest

from flowledger.ui import views

UI = Path(views.__file__).parent
STATIC = UI / "static"
ROOT = UI.parents[2]


def test_every_static_file_a_template_loads_is_in_the_package() -> None:
    wanted = set()
    for template in (UI / "templates").glob("*.html"):
        wanted |= set(re.findall(r"\{\{ root \}\}/static/([\w./-]+)", template.read_text()))
    assert {"app.css", "app.js", "vendor/htmx.min.js"} <= wanted
    missing = sorted(name for name in wanted if not (STATIC / name).is_file())
    assert missing == []


def test_vendored_files_match_their_recorded_checksums() -> None:
    table = (STATIC / "vendor" / "VENDORED.md").read_text()
    rows = re.findall(r"^\| `([^`]+)`[^|]*\|[^|]*\| ([\d.]+) \| ([\w.-]+) \| `([0-9a-f]{64})` \|",
                      table, re.MULTILINE)
    assert len(rows) == 5
    for name, _version, _licence, digest in rows:
        path = ROOT / name if name.startswith("tests/") else STATIC / "vendor" / name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, name
    assert sorted(p.name for p in (STATIC / "vendor" / "licenses").iterdir()) == [
        "htmx-ext-sse.LICENSE", "htmx.org.LICENSE", "uPlot.LICENSE"]


@pytest.mark.parametrize(("seconds", "shown"), [
    (None, "\u2013"), (0.0000042, "4 µs"), (0.0123, "12 ms"), (3.25, "3.2 s"), (42, "42 s"),
    (75, "1 min 15 s"), (3600, "1 h"), (3725, "1 h 2 min"), (90000, "1 d 1 h")])
def test_durations_read_in_two_units_at_most(seconds: float | None, shown: str) -> None:
    assert views.duration(seconds) == shown
    if seconds is not None:
        assert views.duration(timedelta(seconds=seconds)) == shown


@pytest.mark.parametrize(("usd", "shown"), [
    (None, "\u2013"), (0, "$0"), (0.0042, "$0.0042"), (0.00031, "$0.00031"), (0.5, "$0.50"),
    (12.5, "$12.50"), (1234.567, "$1,234.57")])
def test_costs_keep_the_digits_a_small_amount_needs(usd: float | None, shown: str) -> None:
    assert views.cost(usd) == shown


def test_a_time_is_shown_in_utc_until_the_browser_localises_it() -> None:
    html = str(views.when("2026-12-02T08:00:00+01:00"))
    assert 'datetime="2026-12-02T07:00:00.000+00:00"' in html
    assert "2026-12-02 07:00:00 UTC" in html


def test_statuses_carry_a_symbol_and_a_word() -> None:
    for status in ("completed", "failed", "running", "pending", "cancelled", "stalled"):
        html = str(views.status_badge(status))
        assert f"s-{status}" in html and f"> {status}</span>" in html
    assert "&lt;script&gt;" in str(views.status_badge("<script>"))

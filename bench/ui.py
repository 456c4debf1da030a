"""The web UI against a big store, measured in Debian's Chromium (Playwright).

    .venv/bin/python bench/ui.py [--runs 1000000] [--repeat 7]

Bulk-loads ``--runs`` runs of 3 steps into a SQLite ledger (the rows ``bench/scale.py``
makes), plus one run of 1,000 steps, one of 10,000 and one left running; starts a real
``flowledger ui`` process and logs in with its one-time URL. Then, each the median of
``--repeat`` (and the worst):

- the runs page: the server's time (the answer's wall time to one client over
  loopback, no browser) and Chromium's first contentful paint;
- the run pages of 1,000 and 10,000 steps: time from navigation until the timeline has
  drawn and the page's script is wired (interactive), the longest task while loading,
  and the longest frame while the timeline is scrolled and zoomed (the page times its
  animation frames: the longest gap is the longest task plus one frame);
- a live run page while nothing changes: requests the browser makes per second
  (counted by Playwright over 10 s), and a runs page left open: its polls per second
  and how many answered 304.

Targets (the UI issue): runs page server time ≤ 50 ms, first paint ≤ 500 ms; 1,000-step
run page interactive ≤ 1.5 s, 10,000-step ≤ 3 s with no long task over 200 ms while
scrolling the timeline; a live run page ≤ 1 request/s when nothing changes.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright

import flowledger as fl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the bench package is importable
from bench.scale import Payloads, synthetic_batches  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
# Headless Chromium reports no "longtask" or "long-animation-frame" entries, so the page
# times its own frames: the longest gap between two animation frames is the longest task
# plus one frame (~17 ms).
FRAME_GAPS = """
window.__gaps = [];
(function () {
  let last = performance.now();
  function frame(now) { window.__gaps.push(now - last); last = now; requestAnimationFrame(frame); }
  requestAnimationFrame(frame);
})();
"""


def fill(url: str, runs: int) -> dict[str, str]:
    """The store; the ids of the 1,000-step, 10,000-step and running runs."""
    special: dict[str, str] = {}
    with fl.Ledger(url, durability="normal") as ledger:
        started = time.perf_counter()
        payloads = Payloads(inputs='{"n": 1, "text": "hello"}', output='{"answer": 42}',
                            step_input='{"i": 1}', step_output='{"value": 1}')
        for run_rows, step_rows in synthetic_batches(runs, steps=3, owners=["default"],
                                                     payloads=payloads):
            ledger.store.load_records(run_rows, step_rows)
        for name, steps, status in (("1000", 1000, "completed"), ("10000", 10_000, "completed"),
                                    ("live", 5, "running")):
            rows, step_rows = next(synthetic_batches(1, steps=steps, owners=["default"],
                                                     span_days=0, payloads=payloads))
            rows[0] |= {"status": status, "total_steps": steps if status != "running" else 0,
                        "completed_steps": steps if status != "running" else 0,
                        "failed_steps": 0, "completed_at": None if status == "running"
                        else rows[0]["created_at"] + steps * 3_000,
                        "output": None if status == "running" else rows[0]["output"]}
            if status == "running":
                step_rows = step_rows[:3]
            ledger.store.load_records(rows, step_rows)
            special[name] = str(rows[0]["id"])
        ledger.store.backend._hot.execute("ANALYZE")  # type: ignore[attr-defined]
        print(f"{runs:,} runs loaded in {time.perf_counter() - started:.1f} s", flush=True)
    return special


class UiProcess:
    def __init__(self, url: str, port: int) -> None:
        self.out = tempfile.NamedTemporaryFile(mode="w+", suffix=".out")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flowledger", "--db", url, "ui", "--port", str(port)],
            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
            stdout=self.out, stderr=subprocess.STDOUT, text=True)
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            text = Path(self.out.name).read_text()
            found = re.search(r"(http://\S+/ui/login\?token=\S+)", text)
            if found and self._answers():
                self.login = found.group(1)
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"flowledger ui did not start: {text}")
            time.sleep(0.1)  # a process starting up: nothing to synchronise on but its port

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.base}/api/v1/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def median_max(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f} ms (worst {max(values):.1f})"


def server_times(ui: UiProcess, cookie: dict[str, str], path: str, repeat: int) -> list[float]:
    times = []
    with httpx.Client(base_url=ui.base, cookies=cookie, timeout=60) as client:
        client.get(path)  # warm
        for _ in range(repeat):
            began = time.perf_counter()
            answer = client.get(path)
            times.append((time.perf_counter() - began) * 1000)
            assert answer.status_code == 200, answer.text[:200]
    return times


def first_paint(context: Any, url: str) -> float:
    """First contentful paint of ``url`` in a fresh tab (a reloaded tab may report none)."""
    page = context.new_page()
    try:
        page.goto(url)
        page.wait_for_selector("body[data-ready]")
        value = page.evaluate("""new Promise(done => new PerformanceObserver((list, seen) => {
            const paint = list.getEntriesByName("first-contentful-paint")[0];
            if (paint) { seen.disconnect(); done(paint.startTime); }
        }).observe({type: "paint", buffered: true}))""")
        return float(value)
    finally:
        page.close()


def run_page(page: Page, url: str) -> tuple[float, float]:
    """(ms until the timeline is drawn and wired, longest frame gap while loading)."""
    page.goto(url, wait_until="commit")
    page.wait_for_selector("#timeline[data-ready]", timeout=60_000)
    page.wait_for_selector("body[data-ready]")
    ready = float(page.evaluate("new Promise(r => requestAnimationFrame(() => "
                                "r(performance.now())))"))
    longest = float(page.evaluate("Math.max(0, ...window.__gaps)"))
    return ready, longest


def scroll_timeline(page: Page) -> float:
    """The longest frame gap while the timeline is scrolled and zoomed."""
    page.evaluate("window.__gaps = []")
    page.hover("#timeline canvas", position={"x": 600, "y": 100})
    for _ in range(30):
        page.mouse.wheel(0, 400)
    page.keyboard.down("Control")
    for _ in range(10):
        page.mouse.wheel(0, -200)
    page.keyboard.up("Control")
    for _ in range(30):
        page.mouse.wheel(0, -400)
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    return float(page.evaluate("Math.max(0, ...window.__gaps)"))


def count_requests(page: Page, url: str, seconds: float) -> tuple[float, int, int]:
    """Requests per second the page makes after loading, over ``seconds``; (rate,
    requests, answered 304)."""
    seen: list[Any] = []
    page.goto(url)
    page.wait_for_selector("body[data-ready]")

    def answered(response: Any) -> None:  # Playwright tags its handlers: no bound builtin
        seen.append(response.status)

    page.on("response", answered)
    page.wait_for_timeout(seconds * 1000)  # the measurement window itself
    page.remove_listener("response", answered)
    not_modified = seen.count(304)
    return len(seen) / seconds, len(seen), not_modified


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--screenshots", metavar="DIR",
                        help="also save the runs page and the 10,000-step run page here")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="flowledger-ui-bench-"))
    url = f"sqlite:///{workdir / 'ledger.db'}"
    special = fill(url, args.runs)
    ui = UiProcess(url, args.port)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM)
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            context.add_init_script(FRAME_GAPS)
            page = context.new_page()
            page.goto(ui.login)
            page.wait_for_selector("body[data-ready]")
            cookie = {c["name"]: c["value"] for c in context.cookies()}
            print(f"\n{args.runs:,} runs, SQLite, one `flowledger ui` process; median of "
                  f"{args.repeat}\n")
            print("runs page, server time            ",
                  median_max(server_times(ui, cookie, "/ui/runs", args.repeat * 3)),
                  " target ≤ 50 ms")
            print("runs page ?status=failed, server  ",
                  median_max(server_times(ui, cookie, "/ui/runs?status=failed",
                                          args.repeat * 3)))
            print("runs rows poll (200), server      ",
                  median_max(server_times(ui, cookie, "/ui/runs/rows", args.repeat * 3)))
            paints = [first_paint(context, f"{ui.base}/ui/runs") for _ in range(args.repeat)]
            print("runs page, first contentful paint ", median_max(paints),
                  " target ≤ 500 ms")
            for name, target in (("1000", 1500), ("10000", 3000)):
                path = f"/ui/runs/{special[name]}"
                print(f"run page {name:>6} steps, server     ",
                      median_max(server_times(ui, cookie, path, args.repeat)))
                loads = [run_page(page, ui.base + path) for _ in range(args.repeat)]
                print(f"run page {name:>6} steps, interactive",
                      median_max([ready for ready, _ in loads]), f" target ≤ {target} ms")
                print(f"  longest frame while loading       "
                      f"{max(longest for _, longest in loads):8.1f} ms")
                scrolls = [scroll_timeline(page) for _ in range(3)]
                print(f"  longest frame while scrolling     {max(scrolls):8.1f} ms"
                      "   target: no task over 200 ms")
            rate, seen, _ = count_requests(page, f"{ui.base}/ui/runs/{special['live']}", 10)
            print(f"live run page, nothing changing    {rate:8.2f} requests/s ({seen} in 10 s;"
                  " the event stream stays open)  target ≤ 1/s")
            rate, seen, unchanged = count_requests(page, f"{ui.base}/ui/runs", 10)
            print(f"runs page left open                {rate:8.2f} requests/s ({seen} in 10 s,"
                  f" {unchanged} answered 304)")
            if args.screenshots:
                folder = Path(args.screenshots)
                folder.mkdir(parents=True, exist_ok=True)
                page.goto(f"{ui.base}/ui/runs")
                page.screenshot(path=str(folder / "runs-1M.png"))
                page.goto(f"{ui.base}/ui/runs/{special['10000']}")
                page.wait_for_selector("#timeline[data-ready]")
                page.screenshot(path=str(folder / "run-10000-steps.png"))
                print(f"screenshots in {folder}")
            browser.close()
    finally:
        ui.stop()


if __name__ == "__main__":
    main()

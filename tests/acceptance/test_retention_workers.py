"""Two real ``flowledger worker`` processes apply the retention policies at once: every
run is archived exactly once and deleted once, and the archive restores them all."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from pathlib import Path

import flowledger as fl
from tests.helpers import worker_app as app
from tests.helpers.workers import WorkerProcess, wait_until


def test_two_workers_apply_policies_without_archiving_or_deleting_twice(
        db_url: str, tmp_path: Path) -> None:
    with fl.Ledger(db_url) as ledger:
        made = sorted(ledger.start(app.one_step, n).id for n in range(40))
        for run_id in made:
            ledger.result(run_id)
        ledger.set_retention(workflow="one_step", keep=timedelta(0),
                             archive=f"file://{tmp_path}/{{owner}}/{{date}}.jsonl.gz")
        started = [WorkerProcess(db_url, "--queue", "nothing-here", "--retention-interval",
                                 "0.2s", name=f"r{n}") for n in range(2)]
        try:
            wait_until(lambda: not ledger.runs(workflow="one_step", limit=1).runs,
                       timeout=120, what="the policy to remove every run")
        finally:
            outcomes = [worker.stop() for worker in started]
        assert [code for code, _ in outcomes] == [0, 0], outcomes
        objects = sorted((tmp_path / "default").glob("*.jsonl.gz"))
        archived = [entry["run"]["id"] for path in objects
                    for line in gzip.decompress(path.read_bytes()).decode().splitlines()
                    if json.loads(line)["format"] == "flowledger.archive"
                    for entry in json.loads(line)["runs"]]
        assert sorted(archived) == made  # each run exactly once, across both workers
        report = ledger.restore_archive(f"file://{tmp_path}/default/*.jsonl.gz")
        assert report.restored == 40
        assert sorted(ledger.result(r) for r in made) == sorted(n + 1 for n in range(40))

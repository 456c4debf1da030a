"""flowledger retention set | ls | rm | apply and flowledger archive restore, in-process on
both backends; two real processes applying the policies at once; a worker applying them."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

import flowledger as fl
from flowledger.errors import LeaseNotHeld
from tests.cli.conftest import CLI
from tests.helpers import cli_flows


def _runs(db_url: str, count: int) -> list[str]:
    made = []
    with fl.Ledger(db_url) as ledger:
        for i in range(count):
            handle = ledger.start(cli_flows.greet, f"n{i}")
            handle.result(timeout=30)
            made.append(handle.id)
    return made


def test_set_list_apply_restore_and_remove(cli: CLI, db_url: str, tmp_path: Path) -> None:
    made = _runs(db_url, 3)
    template = f"file://{tmp_path}/{{owner}}/{{date}}.jsonl.gz"
    result = cli("retention", "set", "--workflow", "cli_greet", "--keep", "0s",
                 "--status", "completed", "--archive", template)
    assert result.code == 0, result.err
    policy_id = result.out.split(":")[0]
    assert f"archive to {template}" in result.out
    listed = cli("retention", "ls", "--json").json()
    assert [(p["id"], p["workflow"], p["statuses"], p["keep_seconds"], p["archive"])
            for p in listed] == [(policy_id, "cli_greet", ["completed"], 0.0, template)]
    assert policy_id in cli("retention", "ls").out

    dry = cli("retention", "apply", "--dry-run", "--json").json()
    assert (dry["runs"], dry["dry_run"], dry["archives"]) == (3, True, [])
    applied = cli("retention", "apply")
    assert applied.code == 0 and "deleted 3 runs (3 run trees)" in applied.out
    assert cli("runs", "--json").json()["runs"] == []
    (archive,) = (tmp_path / "default").glob("*.jsonl.gz")
    restored = cli("archive", "restore", str(archive), "--json").json()
    assert (restored["restored"], restored["skipped"]) == (3, 0)
    assert sorted(r["id"] for r in cli("runs", "--json").json()["runs"]) == sorted(made)
    again = cli("archive", "restore", f"file://{tmp_path}/default/*.jsonl.gz")
    assert again.code == 0 and "restored 0 runs" in again.out and "skipped 3" in again.out

    assert cli("retention", "rm", policy_id).code == 0
    assert cli("retention", "ls", "--json").json() == []


@pytest.mark.parametrize(("args", "message"), [
    (["--keep", "-3d"], "not a duration: '-3d'"),
    (["--keep", "1d", "--archive", "file:///x/{customer}.gz"], "unknown placeholder"),
    (["--keep", "1d", "--archive", "nosuchproto://b/{date}.gz"], "fsspec knows no protocol"),
    (["--keep", "1d", "--status", "running"], "finished runs"),
])
def test_bad_input_exits_2_and_stores_nothing(cli: CLI, args: list[str],
                                              message: str) -> None:
    result = cli("retention", "set", *args)
    assert result.code == 2 and message in result.err, result.err
    assert cli("retention", "ls", "--json").json() == []


def test_unknown_policy_and_bad_archives(cli: CLI, tmp_path: Path) -> None:
    gone = cli("retention", "rm", "rp_nothing")
    assert gone.code == 3 and "no retention policy with id 'rp_nothing'" in gone.err
    junk = tmp_path / "junk.jsonl.gz"
    junk.write_bytes(gzip.compress(b'{"hello": "world"}\n'))
    refused = cli("archive", "restore", str(junk))
    assert refused.code == 2 and "is not a flowledger retention archive record" in refused.err
    missing = cli("archive", "restore", str(tmp_path / "none.jsonl.gz"))
    assert missing.code == 2 and "archive" in missing.err


def test_a_lease_taken_over_fences_the_old_holder_out(db_url: str) -> None:
    (run_id,) = _runs(db_url, 1)
    with fl.Ledger(db_url) as ledger:
        store = ledger.store
        old = store.acquire_lease("retention", "a", "tok-a", 1_000, 10)
        assert not isinstance(old, str)
        assert store.acquire_lease("retention", "b", "tok-b", 1_005, 10) == "a"
        new = store.acquire_lease("retention", "b", "tok-b", 2_000, 10)  # a's expired
        assert not isinstance(new, str) and new.fence == old.fence + 1
        with pytest.raises(LeaseNotHeld):
            store.delete_runs([uuid.UUID(run_id)], lease=old, now=2_001)
        assert ledger.get(run_id).status is fl.RunStatus.COMPLETED
        store.release_lease(new)


_APPLIER = """
import sys, time, flowledger as fl
with fl.Ledger(sys.argv[1]) as ledger:
    print("ready", flush=True)
    sys.stdin.readline()
    deadline = time.monotonic() + 60
    written = []
    while ledger.runs(limit=1).runs and time.monotonic() < deadline:
        written += ledger.apply_retention(batch=2, max_batches=1).archives
    print(len(written), flush=True)
"""


def test_two_processes_applying_at_once_never_delete_or_archive_twice(
        db_url: str, tmp_path: Path) -> None:
    made = _runs(db_url, 20)
    with fl.Ledger(db_url) as ledger:
        ledger.set_retention(keep=timedelta(0),
                             archive=f"file://{tmp_path}/{{owner}}/{{date}}.jsonl.gz")
    procs = [subprocess.Popen([sys.executable, "-c", _APPLIER, db_url], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
             for _ in range(2)]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:  # both start together
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=90)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    objects = sorted((tmp_path / "default").glob("*.jsonl.gz"))
    assert sum(int(out.strip()) for out in outputs) == len(objects)
    archived = [entry["run"]["id"] for path in objects
                for line in gzip.decompress(path.read_bytes()).decode().splitlines()
                if json.loads(line)["format"] == "flowledger.archive"
                for entry in json.loads(line)["runs"]]
    assert sorted(archived) == sorted(made)  # each run exactly once
    with fl.Ledger(db_url) as ledger:
        assert ledger.runs().runs == ()


def test_a_worker_applies_the_policies(db_url: str, tmp_path: Path) -> None:
    made = _runs(db_url, 2)
    with fl.Ledger(db_url) as ledger:
        ledger.set_retention(keep=timedelta(0),
                             archive=f"file://{tmp_path}/{{owner}}/{{date}}.jsonl.gz")
        worker = fl.Worker(ledger=ledger, queues=["nothing-here"], retention_interval=0.05,
                           webhooks=False)
        thread = threading.Thread(target=worker.run,
                                  kwargs={"install_signal_handlers": False})
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while ledger.runs().runs and time.monotonic() < deadline:
                time.sleep(0.05)  # polling the outcome, with a deadline
            assert ledger.runs().runs == ()
        finally:
            worker.stop()
            thread.join(timeout=30)
        restored = ledger.restore_archive(f"file://{tmp_path}/default/*.jsonl.gz")
        assert restored.restored == len(made)


def test_apply_while_another_process_holds_the_lease_does_nothing(
        cli: CLI, db_url: str) -> None:
    made = _runs(db_url, 1)
    with fl.Ledger(db_url) as ledger:
        ledger.set_retention(keep=timedelta(0))
        hold = ledger.store.acquire_lease("retention", "elsewhere:1:2", "tok-x", None,
                                          60_000_000)
        assert not isinstance(hold, str)
        assert ledger.apply_retention().busy == "elsewhere:1:2"
        busy = cli("retention", "apply")
        assert busy.code == 0 and "another process (elsewhere:1:2)" in busy.out
        assert [r.id for r in ledger.runs().runs] == made
        ledger.store.release_lease(hold)
        assert ledger.apply_retention().runs == 1

"""A full disk: the database's (StoreFull, records intact, resumable once space is back)
and the artifact store's (no partial file left behind; stale ones swept by purge)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import flowledger as fl
from tests.helpers.procs import CHILD_PATH, ROOT

limit = {"pages": 0}


@fl.step()
def small(i: int) -> int:
    return i


@fl.step()
def bulky(n: int) -> str:
    return "x" * n


@fl.workflow(name="full_disk")
def filling(n: int) -> int:
    return small(1) + len(bulky(n)) + small(2)


def test_a_full_sqlite_disk_is_store_full_and_loses_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite reports a full disk as SQLITE_FULL: a page limit gives exactly that error
    on every connection flowledger opens, without filling the machine's disk."""
    url = f"sqlite:///{tmp_path / 'full.db'}"
    with fl.Ledger(url) as ledger:
        assert ledger.run(filling, 10) == 13  # fits
    real_connect = sqlite3.connect

    def capped(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = real_connect(*args, **kwargs)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 8}")
        return conn

    monkeypatch.setattr(sqlite3, "connect", capped)
    with fl.Ledger(url) as ledger:
        with pytest.raises(fl.StoreFull) as info:
            ledger.run(filling, 400_000)  # its output does not fit in 8 more pages
        message = str(info.value)
        assert message.startswith("sqlite store: the disk holding the database is full")
        assert "purge" in message and str(tmp_path) not in message
        assert info.value.database is not None and "full.db" in info.value.database
    monkeypatch.setattr(sqlite3, "connect", real_connect)  # space is back
    with fl.Ledger(url) as ledger:
        first, second = sorted(ledger.runs(), key=lambda r: r.id)
        assert ledger.get(first.id).output == 13  # the committed run is intact
        interrupted = ledger.get(second.id)
        assert interrupted.status is fl.RunStatus.RUNNING  # not recorded as failed
        assert [s.status for s in interrupted.steps] == ["completed", "running"]
        assert ledger.resume(second.id).result(timeout=30) == 400_003


CHILD = """
import resource, signal, sys
import flowledger as fl

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

@fl.step()
def keep() -> None:
    fl.artifacts.save("big.bin", b"y" * 3_000_000)

@fl.workflow(name="full_artifact")
def wf() -> None:
    keep()

with fl.Ledger(sys.argv[1], artifacts=sys.argv[2]) as ledger:
    try:
        ledger.run(wf)
    except fl.RunFailed as exc:
        print("failed", exc.error_type, flush=True)
"""


def test_a_failed_artifact_write_leaves_no_partial_file(tmp_path: Path) -> None:
    blobs = tmp_path / "artifacts"
    done = subprocess.run([sys.executable, "-c", CHILD, f"sqlite:///{tmp_path / 'a.db'}",
                           str(blobs)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, PYTHONPATH=CHILD_PATH), check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("failed builtins.OSError"), done.stdout
    assert [p for p in blobs.rglob("*") if p.is_file()] == []  # the partial write is gone


def test_purge_sweeps_partial_writes_a_killed_process_left(tmp_path: Path) -> None:
    blobs = tmp_path / "artifacts"
    with fl.Ledger(f"sqlite:///{tmp_path / 'b.db'}", artifacts=str(blobs)) as ledger:
        ledger.run(filling, 10)
        stale = blobs / "0123456789abcdef" / "ab" / "abcd.1234.tmp"
        fresh = blobs / "0123456789abcdef" / "cd" / "cdef.5678.tmp"
        for leftover in (stale, fresh):
            leftover.parent.mkdir(parents=True)
            leftover.write_bytes(b"partial")
        hour_ago = time.time() - 7200
        os.utime(stale, (hour_ago, hour_ago))
        ledger.purge(timedelta(days=1))
        assert not stale.exists()
        assert fresh.exists()  # may still be being written by a live process

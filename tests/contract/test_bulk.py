"""Bulk operations by filter (``cancel_runs``, ``resume_runs``, ``flowledger cancel`` with
filters) and the listing filters they share with ``runs()``: queue, executor, forked
from, top-level only."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import flowledger as fl
from tests.helpers.procs import CHILD_PATH, ROOT

arrived = threading.Semaphore(0)
release = threading.Event()


@fl.step
def hold(n: int) -> int:
    arrived.release()
    assert release.wait(60), "the test never released the step"
    return n


@fl.step
def after(n: int) -> int:
    return n + 1


@fl.workflow(name="bulk_held")
def bulk_held(n: int) -> int:
    return after(hold(n))


@fl.workflow(name="bulk_other")
def bulk_other(n: int) -> int:
    return after(hold(n))


@fl.workflow(name="bulk_failing")
def bulk_failing(n: int) -> int:
    return after(n) // 0


@fl.workflow(name="bulk_child")
def bulk_child(n: int) -> int:
    return after(n)


@fl.workflow(name="bulk_parent")
def bulk_parent(n: int) -> int:
    return bulk_child(n) + 1


@contextmanager
def held_runs(ledger: fl.Ledger, *starts: tuple[fl.Ledger, object, int]
              ) -> Iterator[list[fl.RunHandle]]:
    """Runs started on threads of this process, each held running inside ``hold`` until
    the block ends (then released: a cancelled one stops before its next step)."""
    release.clear()
    handles = [who.start(workflow, n) for who, workflow, n in starts]  # type: ignore[arg-type]
    try:
        for _ in handles:
            assert arrived.acquire(timeout=60), "a held run never reached its step"
        yield handles
    finally:
        release.set()
        for handle in handles:
            handle.wait(60)


@contextmanager
def running_worker(db_url: str, **options: object) -> Iterator[fl.Worker]:
    worker = fl.Worker(db_url, **options)  # type: ignore[arg-type]
    thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False})
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(60)
        assert not thread.is_alive()


def cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The flowledger command as another process."""
    env = dict(os.environ, PYTHONPATH=CHILD_PATH)
    return subprocess.run([sys.executable, "-m", "flowledger", "--db", db_url, *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def statuses(ledger: fl.Ledger, handles: list[fl.RunHandle]) -> list[str]:
    return [ledger.get(h.id, steps=False).status.value for h in handles]


def test_bulk_cancel_of_50_running_runs_from_another_process(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        alice, bob = ledger.for_owner("alice"), ledger.for_owner("bob")
        starts = ([(alice, bulk_held, n) for n in range(50)]
                  + [(bob, bulk_held, 100), (alice, bulk_other, 200)])
        with held_runs(ledger, *starts) as handles:
            targets, others = handles[:50], handles[50:]
            assert set(statuses(ledger, handles)) == {"running"}

            dry = cli(db_url, "cancel", "--workflow", "bulk_held", "--status", "running",
                      "--owner", "alice", "--dry-run")
            assert dry.returncode == 0, dry.stderr
            lines = dry.stdout.splitlines()
            assert lines[-1] == "would cancel 50 runs"
            assert sorted(lines[:-1]) == sorted(h.id for h in targets)
            assert set(statuses(ledger, handles)) == {"running"}  # the dry run changed nothing

            done = cli(db_url, "cancel", "--workflow", "bulk_held", "--status", "running",
                       "--owner", "alice")
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip() == "cancelled 50 runs"
            assert statuses(ledger, targets) == ["cancelled"] * 50
            assert statuses(ledger, others) == ["running", "running"]
        for handle in targets:
            with pytest.raises(fl.RunCancelled):
                handle.result(timeout=60)
        assert [h.result(timeout=60) for h in others] == [101, 201]
        # Each cancelled run stopped before its next step: ``after`` never ran.
        assert {len(ledger.get(h.id).steps) for h in targets} == {1}


def test_bulk_cancel_is_owner_scoped_batched_and_needs_a_filter(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        alice, bob = ledger.for_owner("alice"), ledger.for_owner("bob")
        mine = [alice.submit(bulk_child, n, queue="bulk") for n in range(7)]
        theirs = [bob.submit(bulk_child, n, queue="bulk") for n in range(3)]
        with pytest.raises(fl.ConfigurationError, match="no filter given"):
            alice.cancel_runs()
        with pytest.raises(fl.ConfigurationError, match="can be cancelled"):
            alice.cancel_runs(status="completed")
        with pytest.raises(fl.ConfigurationError, match="batch_size"):
            alice.cancel_runs(all_runs=True, batch_size=0)
        # Another owner's filter from a scoped Ledger matches nothing.
        assert alice.cancel_runs(owner="bob").count == 0
        result = alice.cancel_runs(all_runs=True, batch_size=3)  # three batches
        assert result.count == 7 and not result.dry_run
        assert sorted(result.run_ids) == sorted(h.id for h in mine)
        assert {h.status() for h in mine} == {fl.RunStatus.CANCELLED}
        assert {h.status() for h in theirs} == {fl.RunStatus.PENDING}
        assert alice.cancel_runs(all_runs=True).count == 0  # nothing unfinished is left


def test_cli_bulk_cancel_refuses_no_filter_and_mixing_with_an_id(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        handle = ledger.submit(bulk_child, 1, queue="bulk")
    refused = cli(db_url, "cancel")
    assert refused.returncode != 0 and "--all" in refused.stderr
    mixed = cli(db_url, "cancel", handle.id, "--workflow", "bulk_child")
    assert mixed.returncode != 0 and "not both" in mixed.stderr
    assert handle.status() is fl.RunStatus.PENDING
    everything = cli(db_url, "cancel", "--all", "--json")
    assert everything.returncode == 0, everything.stderr
    assert '"count": 1' in everything.stdout
    assert handle.status() is fl.RunStatus.CANCELLED


def test_bulk_resume_puts_failed_runs_back_in_a_queue(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        queued = [ledger.submit(bulk_failing, n, queue="jobs") for n in range(3)]
        with running_worker(db_url, queues=["jobs"]):
            for handle in queued:
                with pytest.raises(fl.RunFailed):
                    handle.result(timeout=60)
        local = ledger.start(bulk_failing, 9)
        with pytest.raises(fl.RunFailed):
            local.result(timeout=60)
        with pytest.raises(fl.ConfigurationError, match="no filter given"):
            ledger.resume_runs()
        with pytest.raises(fl.ConfigurationError, match="can be resumed"):
            ledger.resume_runs(status="running", workflow="bulk_failing")
        dry = ledger.resume_runs(workflow="bulk_failing", dry_run=True)
        assert dry.count == 3 and dry.skipped == (local.id,)
        assert {h.status() for h in queued} == {fl.RunStatus.FAILED}
        done = ledger.resume_runs(workflow="bulk_failing", status="failed")
        assert sorted(done.run_ids) == sorted(h.id for h in queued)
        assert {h.status() for h in queued} == {fl.RunStatus.PENDING}
        assert local.status() is fl.RunStatus.FAILED  # no queue to go to: left alone
        moved = ledger.resume_runs(workflow="bulk_failing", to_queue="retry")
        assert moved.run_ids == (local.id,)
        assert ledger.get(local.id, steps=False).queue == "retry"
        # A paused run (nothing executes it) goes back to its queue too.
        waiting = ledger.submit(bulk_child, 1, queue="later")
        assert ledger.pause(waiting.id)
        assert ledger.resume_runs(status="paused").run_ids == (waiting.id,)
        assert waiting.status() is fl.RunStatus.PENDING
        assert ledger.get(waiting.id, steps=False).queue == "later"


def test_listing_filters_fork_child_top_level_queue_executor(db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        parent = ledger.start(bulk_parent, 1)
        assert parent.result(timeout=60) == 3
        (child,) = ledger.runs(parent=parent.id).runs
        fork = ledger.fork(parent.id, 1)
        assert fork.result(timeout=60) == 3
        queued = ledger.submit(bulk_child, 5, queue="elsewhere")
        here = ledger.get(parent.id, steps=False).executor
        assert here is not None

        def ids(**filters: object) -> set[str]:
            page = ledger.runs(limit=100, **filters)  # type: ignore[arg-type]
            listed = {run.id for run in page.runs}
            summaries = ledger.summaries(limit=100, **filters)  # type: ignore[arg-type]
            assert {run["id"] for run in summaries.runs} == listed  # both read paths agree
            return listed

        fork_child = {r.id for r in ledger.runs(parent=fork.id).runs}
        assert len(fork_child) == 1
        assert ids(top_level=True) == {parent.id, fork.id, queued.id}
        assert ids(forked_from=parent.id) == {fork.id}
        assert ids(forked_from=fork.id) == set()
        assert ids(queue="elsewhere") == {queued.id}
        assert ids(executor=here) == {parent.id, child.id, fork.id} | fork_child
        assert ids(executor=here.rsplit(":", 2)[0] + ":") == ids(executor=here)
        assert ids(executor="other-host:") == set()
        assert ids(top_level=True, executor=here) == {parent.id, fork.id}
        # Cursors carry the new filters: the next page of one listing is refused by another.
        first = ledger.runs(top_level=True, limit=1)
        assert first.next_cursor is not None
        with pytest.raises(fl.InvalidCursor):
            ledger.runs(limit=1, cursor=first.next_cursor)
        assert len(ledger.runs(top_level=True, limit=1, cursor=first.next_cursor).runs) == 1
        with pytest.raises(fl.ConfigurationError, match="top_level"):
            ledger.runs(parent=parent.id, top_level=True)
        with pytest.raises(fl.RunNotFound):
            ledger.runs(forked_from="not-a-run-id")

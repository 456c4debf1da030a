"""Edge cases found by trying flowledger as a new user."""

from __future__ import annotations

import asyncio
import importlib
import pathlib
import subprocess
import sys
import threading

import pytest

import flowledger as fl
from flowledger import ids
from flowledger.store import NewRun


def test_runs_resume_from_their_own_entrypoint_not_a_namesake(ledger: fl.Ledger) -> None:
    twin_a = importlib.import_module("tests.helpers.twin_a")
    source = ledger.start(twin_a.pipeline, "x")
    assert source.result(timeout=30) == "a:x"
    importlib.import_module("tests.helpers.twin_b")  # registers another "twin"
    try:
        assert ledger.fork(source.id, from_position=1).result(timeout=30) == "a:x"
    finally:
        importlib.reload(twin_a)


def _dead_identity() -> str:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return f"{ids.hostname()}:{child.pid}:0"


def _orphan(ledger: fl.Ledger, workflow: str, entrypoint: str) -> str:
    run = NewRun(id=ids.new_run_id(), workflow=workflow, version="1", entrypoint=entrypoint,
                 owner="default", status="running", serializer="json", inputs='{"n": 3}',
                 created_at=ids.now_us(), executor=_dead_identity(),
                 lease_token=ids.new_token())
    ledger.store.create_run(run)
    return str(run.id)


def test_recover_skips_runs_it_cannot_load_and_recovers_the_rest(ledger: fl.Ledger) -> None:
    unloadable = _orphan(ledger, "gone_workflow", "no_such_module:wf")
    loadable = _orphan(ledger, "crash_chain", "tests.helpers.crashy:chain")
    handles = ledger.recover()
    assert [h.id for h in handles] == [loadable]
    assert handles[0].result(timeout=30) == 1 + 4 + 9
    assert ledger.get(unloadable).status is fl.RunStatus.RUNNING


def test_failed_gather_leaves_no_step_running(ledger: fl.Ledger) -> None:
    @fl.step()
    async def slow_sibling() -> int:
        await asyncio.Event().wait()
        return 1

    @fl.step()
    async def failing() -> int:
        raise ValueError("boom")

    @fl.workflow(name="rob_gather_fail")
    async def wf() -> list[int]:
        return list(await asyncio.gather(slow_sibling(), failing()))

    with pytest.raises(fl.RunFailed) as info:
        ledger.run(wf)
    run = ledger.get(info.value.run_id)
    assert [(s.name, s.status) for s in run.steps] == [
        ("slow_sibling", fl.StepStatus.FAILED), ("failing", fl.StepStatus.FAILED)]
    assert run.steps[0].error is not None and "while this step was running" in (
        run.steps[0].error.message)
    assert run.counts.running == 0 and run.counts.failed == 2


def test_timed_out_step_cannot_swallow_its_interruption(ledger: fl.Ledger) -> None:
    stopped = threading.Event()
    never = threading.Event()

    @fl.step(timeout=0.2)
    def stubborn() -> None:
        try:
            while not never.is_set():
                never.wait(0.01)  # pure Python loop: interruptible at each iteration
        except Exception:
            never.wait(30)  # would keep running if the interruption were an Exception
        finally:
            stopped.set()

    @fl.workflow(name="rob_stubborn")
    def wf() -> None:
        stubborn()

    with pytest.raises(fl.RunFailed) as info:
        ledger.run(wf)
    assert "step 'stubborn' (position 1) exceeded its timeout" in str(info.value)
    assert stopped.wait(10)


@pytest.mark.parametrize("field", ["name", "version"])
def test_overlong_names_are_refused_on_every_backend(field: str) -> None:
    with pytest.raises(fl.ConfigurationError, match="printable characters"):
        fl.workflow(**{field: "x" * 201})(lambda: None)  # type: ignore[call-overload]
    with pytest.raises(fl.ConfigurationError):
        fl.step(name="two\nlines")(lambda: None)


def test_async_step_called_without_await_is_explained(ledger: fl.Ledger) -> None:
    @fl.step()
    async def fetch() -> int:
        return 1

    @fl.workflow(name="rob_no_await")
    def wf() -> object:
        return fetch()

    with pytest.warns(RuntimeWarning, match="never awaited"), \
            pytest.raises(fl.RunFailed, match="without await"):
        ledger.run(wf)


def test_postgres_scheme_alias(pg_database: str) -> None:
    url = pg_database.replace("postgresql://", "postgres://", 1)
    with fl.Ledger(url) as ledger:
        assert ledger.store.dialect == "postgresql"


def test_sqlite_path_below_a_file_is_a_configuration_error(tmp_path: object) -> None:
    blocker = pathlib.Path(str(tmp_path)) / "file"
    blocker.write_text("x")
    with pytest.raises(fl.ConfigurationError, match="cannot create the folder"):
        fl.Ledger(f"sqlite:///{blocker}/sub/ledger.db")


@pytest.mark.parametrize(("durability", "sqlite", "postgresql"), [
    ("strict", ("FULL", "FULL"), ("on", "on")),
    ("full", ("NORMAL", "FULL"), ("off", "on")),
    ("normal", ("NORMAL", "NORMAL"), ("off", "off")),
])
def test_durability_sets_how_begin_markers_and_results_wait_for_the_disk(
        db_url: str, durability: str, sqlite: tuple[str, str],
        postgresql: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """strict: attempt counts survive a database crash too (begin markers are flushed)."""
    monkeypatch.setenv("FLOWLEDGER_DURABILITY", durability)  # as workers and the CLI get it
    with fl.Ledger(db_url) as ledger:
        ledger.run(durable_flow, 2)
        modes = ledger.store.backend.commit_modes()
        expected = sqlite if ledger.store.dialect == "sqlite" else postgresql
        assert (modes["begin"], modes["result"]) == expected
        run = ledger.get(ledger.runs().runs[0].id)
        assert run.status is fl.RunStatus.COMPLETED and run.output == 3
    with pytest.raises(fl.ConfigurationError, match="'strict', 'full' or 'normal'"):
        fl.Ledger(db_url, durability="sometimes")  # type: ignore[arg-type]


@fl.step()
def durable_step(x: int) -> int:
    return x + 1


@fl.workflow(name="rob_durable")
def durable_flow(x: int) -> int:
    return durable_step(x)

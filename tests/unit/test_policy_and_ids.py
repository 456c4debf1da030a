"""Retry policy arithmetic, ids, process liveness and entrypoints."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import flowledger as fl
from flowledger import ids
from flowledger.workflow import RetryPolicy, load_entrypoint


def test_backoff_grows_exponentially_within_jitter_and_cap() -> None:
    policy = RetryPolicy(retries=10, backoff=0.5, max_backoff=3.0, jitter=0.2)
    for failed, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        delays = [policy.delay(failed) for _ in range(200)]
        assert all(base * 0.8 <= d <= base * 1.2 for d in delays)
        assert max(delays) - min(delays) > 0  # jitter actually spreads retries
    assert RetryPolicy(jitter=0).delay(1) == 0.5


def test_retryable_respects_marks() -> None:
    policy = RetryPolicy(non_retryable=(KeyError,))
    assert policy.retryable(ValueError())
    assert not policy.retryable(KeyError())
    assert not policy.retryable(fl.NonRetryable())


@pytest.mark.parametrize("kwargs", [{"retries": -1}, {"jitter": 2.0}, {"backoff": -1.0}])
def test_invalid_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(fl.ConfigurationError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(fl.ConfigurationError):
        fl.step(timeout=0)


def test_run_ids_are_uuid7_and_time_ordered() -> None:
    made = [ids.new_run_id() for _ in range(1000)]
    assert all(u.version == 7 for u in made)
    assert made == sorted(made)
    assert ids.parse_run_id(str(made[0])) == made[0]
    assert ids.parse_run_id("garbage") is None


def test_process_liveness() -> None:
    assert ids.is_alive_here(ids.identity()) is True
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = f"{ids.hostname()}:{child.pid}:{ids._process_start(os.getpid())}"
    assert ids.is_alive_here(dead) is False
    # The same pid with another start time is a different (reused) process.
    assert ids.is_alive_here(f"{ids.hostname()}:{os.getpid()}:1") is False
    assert ids.is_alive_here("elsewhere.example:1:1") is None


def test_entrypoints_import_modules_and_files(tmp_path: Path) -> None:
    definition = load_entrypoint("tests.helpers.crashy:chain")
    assert definition.name == "crash_chain"
    script = tmp_path / "script_wf.py"
    script.write_text("import flowledger as fl\n\n"
                      "@fl.workflow(name='from_file_" + uuid.uuid4().hex[:6] + "')\n"
                      "def wf() -> int:\n    return 1\n")
    assert load_entrypoint(f"{script}:wf").fn() == 1
    with pytest.raises(fl.ConfigurationError, match="malformed"):
        load_entrypoint("nocolon")
    for bad, message in [("tests.helpers.crashy:missing", "has no 'missing'"),
                         ("x.f.<locals>.g:y.<locals>.z", "inside a function"),
                         (f"{tmp_path}/absent.py:wf", "does not exist"),
                         ("tests.helpers.crashy:main", "not a @workflow")]:
        with pytest.raises(fl.WorkflowNotFound, match=message):
            load_entrypoint(bad)


def test_cost_totals_carry_no_float_noise() -> None:
    calls = [fl.Usage("m", None, 1, 1, 0, 0, cost, "v", None) for cost in (0.1, 0.2, 0.1125)]
    assert sum(c.cost_usd or 0 for c in calls) != 0.4125  # what float addition gives
    assert fl.UsageTotals.of(calls).cost_usd == 0.4125
    assert repr(fl.UsageTotals.of(calls[:2]).cost_usd) == "0.3"

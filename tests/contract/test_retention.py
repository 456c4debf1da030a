"""Purge removes whole run trees: a child run never outlives its parent's record."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

import flowledger as fl
from flowledger.store.schema import runs


@fl.step()
def leaf(x: int) -> int:
    return x + 1


@fl.workflow(name="ret_child")
def child(x: int) -> int:
    return leaf(x)


@fl.step()
def explode(x: int) -> int:
    raise ValueError(f"parent fails after its child gave {x}")


@fl.workflow(name="ret_parent")
def parent(x: int) -> int:
    return explode(child(x))


def _tree(ledger: fl.Ledger) -> tuple[str, str]:
    with pytest.raises(fl.RunFailed) as info:
        ledger.run(parent, 1)
    kid = ledger.get(info.value.run_id).steps[0].child_run_id
    assert kid is not None and ledger.get(kid).status is fl.RunStatus.COMPLETED
    return info.value.run_id, kid


def test_a_parent_is_purged_with_its_children(ledger: fl.Ledger, tmp_path: Path) -> None:
    parent_id, kid = _tree(ledger)
    ledger.run(child, 5)  # a run of its own, not in the tree: kept by the status filter
    archive = tmp_path / "trees.jsonl.gz"
    dry = ledger.purge(timedelta(0), status="failed", dry_run=True)
    assert (dry.runs, dry.steps, dry.kept) == (2, 3, 0)
    report = ledger.purge(timedelta(0), status="failed", archive=str(archive))
    assert (report.runs, report.steps, report.kept) == (2, 3, 0)
    for gone in (parent_id, kid):
        with pytest.raises(fl.RunNotFound):
            ledger.get(gone)
    assert [r.workflow for r in ledger.runs()] == ["ret_child"]  # the unrelated run
    archived = list(fl.read_archive(str(archive)))
    assert [(r["id"], r["parent_id"]) for r in archived] == [(parent_id, None),
                                                             (kid, parent_id)]


def test_a_tree_with_a_run_still_active_is_kept_whole(ledger: fl.Ledger) -> None:
    parent_id, kid = _tree(ledger)
    with ledger.store.backend.engine.begin() as conn:  # a child still running
        conn.execute(update(runs).where(runs.c.id == uuid.UUID(kid)).values(status="running"))
    report = ledger.purge(timedelta(0))
    assert (report.runs, report.kept) == (0, 1)
    assert ledger.get(parent_id).status is fl.RunStatus.FAILED
    assert ledger.get(kid).status is fl.RunStatus.RUNNING


def test_children_orphaned_by_an_older_purge_are_purged_as_trees(ledger: fl.Ledger) -> None:
    parent_id, kid = _tree(ledger)
    ledger.store.delete_runs([uuid.UUID(parent_id)])  # what flowledger 0.1's purge did
    assert ledger.get(kid).parent_id == parent_id
    report = ledger.purge(timedelta(0))
    assert report.runs == 1
    with pytest.raises(fl.RunNotFound):
        ledger.get(kid)

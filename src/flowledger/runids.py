"""Caller-chosen run ids (``run_id=`` on ``start``, ``run`` and ``submit``): checked, and
idempotent — a second start with the same id finds the run the first one recorded."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from . import ids
from .errors import ConfigurationError, RunIdConflict, StoreError, StoreFull, StoreUnavailable
from .store import NewRun, SqlStore
from .workflow import WorkflowDef


def chosen(value: str | uuid.UUID | None) -> uuid.UUID | None:
    """A caller's run id as a UUID (any version; other strings are refused).

    Example: ``chosen("0190a6f2-8c1e-7cc1-9f55-2d3a8b0e4c11")``
    """
    if value is None:
        return None
    parsed = ids.parse_run_id(value) if isinstance(value, str | uuid.UUID) else None
    if parsed is None:
        raise ConfigurationError(f"run_id must be a UUID (e.g. str(uuid.uuid4())), not "
                                 f"{value!r}")
    return parsed


def existing(store: SqlStore, run_id: uuid.UUID, definition: WorkflowDef,
             owner: str) -> bool:
    """Whether ``run_id`` is already a run of ``definition`` for ``owner`` (True: use it);
    RunIdConflict when it is another workflow's run, or another owner's."""
    row = store.get_run(run_id, None)
    if row is None:
        return False
    if row.owner != owner or row.workflow != definition.name:
        # Another owner's run is not described (its workflow stays unseen).
        what = (f"a run of workflow {row.workflow!r}" if row.owner == owner
                else "a run of another owner")
        raise RunIdConflict(f"run id {run_id} is already {what}; it cannot start "
                            f"{definition.name!r}")
    return True


def create(store: SqlStore, run: NewRun, definition: WorkflowDef,
           insert: Callable[[NewRun], None]) -> bool:
    """Record ``run`` under its chosen id with ``insert``; False when that id was already
    a run of the same workflow and owner (nothing is recorded). Two callers racing with
    one id: the loser's insert fails and it finds the winner's run."""
    if existing(store, run.id, definition, run.owner):
        return False
    try:
        insert(run)
    except (StoreUnavailable, StoreFull):
        raise
    except StoreError:
        if existing(store, run.id, definition, run.owner):
            return False
        raise
    return True


__all__ = ["chosen", "create", "existing"]

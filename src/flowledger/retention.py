"""Streaming exports and retention: ``Ledger.export`` and ``Ledger.purge``."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .artifacts import ArtifactStore
from .encryption import ENCRYPTED_ERROR, ENV_KEYS, SealedPayload
from .errors import PayloadKeyMissing
from .models import Run, RunStatus
from .store import RunFilter, RunRow, SqlStore

BATCH = 500
PURGE_BATCH = 2000  # bounded, yet large enough that per-statement costs amortize
FINISHED = (RunStatus.COMPLETED.value, RunStatus.FAILED.value, RunStatus.CANCELLED.value)
# Full records (steps, usage, context) of a batch of run rows.
ToRuns = Callable[[list[RunRow]], list[Run]]


def iter_runs(store: SqlStore, flt: RunFilter, to_runs: ToRuns,
              batch: int = BATCH) -> Iterator[Run]:
    """Runs (with steps) matching ``flt``, newest first, one batch in memory at a time."""
    before = None
    while True:
        rows = store.list_runs(flt, batch, before)
        if not rows:
            return
        yield from to_runs(rows)
        before = rows[-1].id


@dataclass(frozen=True)
class PurgeReport:
    """What ``Ledger.purge`` removed (or, with ``dry_run``, would remove).

    ``runs`` counts every run removed, child runs included; ``kept`` counts the run
    trees that matched but were left because a run in them is not finished yet, or a
    fork outside them was made from one of their runs.
    """

    runs: int
    steps: int
    archive: str | None
    dry_run: bool
    kept: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "steps": self.steps, "archive": self.archive,
                "dry_run": self.dry_run, "kept": self.kept}


def select_trees(store: SqlStore, roots: list[uuid.UUID]
                 ) -> tuple[list[list[uuid.UUID]], int]:
    """The whole trees under ``roots`` that can go (each root first, then its
    descendants), and how many were kept: a tree with a run not finished yet (pending,
    running, waiting, paused), or with a run that a fork outside the trees going was
    forked from, stays whole until it can go."""
    family = store.family_of(roots)
    parent_of = {run_id: parent for run_id, parent, _ in family}
    top = set(roots)

    def root_of(run_id: uuid.UUID) -> uuid.UUID:
        while run_id not in top:
            run_id = parent_of[run_id]
        return run_id

    members: dict[uuid.UUID, list[uuid.UUID]] = {root: [root] for root in roots}
    kept: set[uuid.UUID] = set()
    for run_id, _, status in family:
        root = root_of(run_id)
        members[root].append(run_id)
        if status not in FINISHED:
            kept.add(root)
    forks = store.forks_into([i for root in roots if root not in kept for i in members[root]])
    while True:  # keeping a tree can leave a fork of another tree outside: look again
        going = {i for root in roots if root not in kept for i in members[root]}
        held = {root_of(source) for fork, source in forks
                if fork not in going and source in going}
        if not held:
            break
        kept |= held
    return [members[root] for root in roots if root not in kept], len(kept)


def _trees(store: SqlStore, roots: list[uuid.UUID]) -> tuple[list[uuid.UUID], int]:
    """``select_trees`` as one list of ids."""
    trees, kept = select_trees(store, roots)
    return [run_id for tree in trees for run_id in tree], kept


def require_readable(run: Run) -> None:
    """Raise ``PayloadKeyMissing`` when a payload of ``run`` is encrypted with a key this
    process lacks: archiving it would keep only the placeholder, and deleting the run
    then would lose it. (Shredded payloads are gone anyway: they may go.)"""
    values: list[Any] = [run.inputs, run.output, *run.context.values()]
    errors = [run.error]
    for step in run.steps:
        values += [step.input, step.output]
        errors.append(step.error)
    for value in values:
        if isinstance(value, SealedPayload) and not value.shredded:
            missing = value.key_id
            break
    else:
        found = [e for e in errors if e is not None and e.type == ENCRYPTED_ERROR
                 and not e.message.startswith("[shredded")]
        if not found:
            return
        named = re.search(r"key '([^']+)'", found[0].message)
        missing = named.group(1) if named else "?"
    raise PayloadKeyMissing(
        f"run {run.id} holds payloads encrypted with key {missing!r}, which this process's "
        f"keyring lacks: archiving them would keep only a placeholder. Archive with the "
        f"keys ({ENV_KEYS}), or purge without an archive; nothing of this batch was "
        "deleted", missing)


def purge(store: SqlStore, flt: RunFilter, to_runs: ToRuns, *, archive: str | None,
          dry_run: bool, blobs: ArtifactStore | None = None, batch: int = PURGE_BATCH,
          progress: Callable[[int], None] | None = None) -> PurgeReport:
    """Delete the run trees whose top run matches, in bounded batches, archiving each
    batch first when asked.

    A run is purged with all its child runs (a child never outlives its parent's
    record); a tree in which any run is not finished yet, or that a fork outside the
    purge was made from, is kept whole (``select_trees``). A batch
    is written and flushed to the archive before it is deleted, so an interruption
    never deletes a run the archive lacks.
    """
    runs_seen = steps_seen = kept = 0
    roots_only = replace(flt, roots=True)
    with contextlib.ExitStack() as stack:
        sink = None
        if archive and not dry_run:
            Path(archive).parent.mkdir(parents=True, exist_ok=True)
            # Appending adds a gzip member; readers see one stream, and an archive that
            # already holds purged runs (gone from the database) is never overwritten.
            sink = stack.enter_context(gzip.open(archive, "at", encoding="utf-8"))
        before = None
        while roots := store.list_run_ids(roots_only, batch, before):
            before = roots[-1]
            ids, left = _trees(store, roots)
            kept += left
            if dry_run:
                steps_seen += sum(len(s) for s in store.steps_of(ids).values())
            elif ids:
                if sink is not None:
                    batch_runs = to_runs(store.runs_by_ids(ids))
                    for run in batch_runs:  # refused before anything of the batch goes
                        require_readable(run)
                    for run in batch_runs:
                        sink.write(json.dumps(run.to_dict()) + "\n")
                    sink.flush()
                    os.fsync(sink.fileno())
                removed, contents = store.delete_runs(ids)
                steps_seen += removed
                if blobs is not None:  # content no run references any more goes too
                    for owner, digest in store.unreferenced(contents):
                        blobs.remove(owner, digest)
            runs_seen += len(ids)
            if progress is not None:
                progress(len(ids))
    if blobs is not None and not dry_run:
        blobs.sweep_temporaries()
    return PurgeReport(runs_seen, steps_seen, None if dry_run else archive, dry_run, kept)


def read_archive(path: str) -> Iterator[dict[str, Any]]:
    """The runs (as dicts, with steps) of a ``purge --archive`` file."""
    with gzip.open(path, "rt", encoding="utf-8") as source:
        for line in source:
            if line.strip():
                yield json.loads(line)

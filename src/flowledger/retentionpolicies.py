"""Retention policies, the Ledger's side: policies stored in the database, applied in
bounded batches by one process at a time (a lease), archiving whole run trees through
fsspec before deleting them, and restoring archives (see docs/retention.md).

Example::

    ledger.set_retention(workflow="etl", keep=timedelta(days=90),
                         archive="s3://bucket/flowledger/{owner}/{date}.jsonl.gz")
    ledger.apply_retention()
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import archives, ids, validation
from .errors import ArchiveError, ConfigurationError, LeaseNotHeld, RetentionPolicyNotFound
from .ledgerbase import LedgerBase
from .models import from_micros
from .retention import FINISHED, select_trees
from .store import ArchivedRun, LeaseHold, RetentionPolicyRow, RunFilter

LEASE = "retention"
LEASE_DURATION_US = 120_000_000  # renewed before every batch; a batch takes far less
BATCH = 200  # run trees per batch: archived and deleted together


@dataclass(frozen=True)
class RetentionPolicy:
    """A stored retention policy: finished run trees whose top run matches ``workflow``,
    ``owner`` and ``statuses`` (None: any) are deleted ``keep`` after they completed,
    archived first to ``archive`` (an fsspec URL template) when set.

    Example: ``[(p.id, p.keep) for p in ledger.retention_policies()]``
    """

    id: str
    workflow: str | None
    owner: str | None
    statuses: tuple[str, ...]
    keep: timedelta
    archive: str | None
    created_at: datetime | None
    updated_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "workflow": self.workflow, "owner": self.owner,
                "statuses": list(self.statuses), "keep_seconds": self.keep.total_seconds(),
                "archive": self.archive,
                "created_at": self.created_at.isoformat() if self.created_at else None,
                "updated_at": self.updated_at.isoformat() if self.updated_at else None}


@dataclass(frozen=True)
class RetentionReport:
    """What ``Ledger.apply_retention`` did (or, with ``dry_run``, would do): run trees
    and runs deleted, trees kept (a live run in them, or a fork outside them), archive
    objects written. ``busy`` names the process holding the lease when another one is
    applying the policies (nothing was done here then).

    Example: ``report = ledger.apply_retention(); print(report.runs, report.archives)``
    """

    trees: int = 0
    runs: int = 0
    kept: int = 0
    archives: tuple[str, ...] = ()
    dry_run: bool = False
    busy: str | None = None
    batches: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"trees": self.trees, "runs": self.runs, "kept": self.kept,
                "archives": list(self.archives), "dry_run": self.dry_run,
                "busy": self.busy, "batches": self.batches}


@dataclass(frozen=True)
class RestoreReport:
    """What ``Ledger.restore_archive`` did: runs restored, runs skipped (recorded already,
    or another owner's for an owner-scoped Ledger), archive objects read.

    Example: ``ledger.restore_archive("file:///data/alice/*.jsonl.gz").restored``
    """

    restored: int
    skipped: int
    archives: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"restored": self.restored, "skipped": self.skipped,
                "archives": list(self.archives)}


def policy_id(workflow: str | None, owner: str | None, statuses: Iterable[str]) -> str:
    """The id of the policy of this selector: setting one with the same selector
    replaces it."""
    selector = json.dumps([workflow, owner, sorted(statuses)])
    return "rp_" + hashlib.blake2b(selector.encode(), digest_size=6).hexdigest()


def _statuses(status: str | Iterable[str] | None) -> tuple[str, ...]:
    given = [status] if isinstance(status, str) else list(status or FINISHED)
    for value in given:
        if value not in FINISHED:
            raise ConfigurationError(f"a retention policy applies to finished runs: status "
                                     f"must be among {', '.join(FINISHED)}, not {value!r}")
    return tuple(sorted(set(given)))


def _policy(row: RetentionPolicyRow) -> RetentionPolicy:
    return RetentionPolicy(row.id, row.workflow, row.owner, tuple(row.statuses.split(",")),
                           timedelta(microseconds=row.keep_us), row.archive,
                           from_micros(row.created_at), from_micros(row.updated_at))


class LedgerRetention(LedgerBase):
    """Retention policies and archives, a part of ``Ledger``."""

    def set_retention(self, workflow: str | None = None, owner: str | None = None,
                      status: str | Iterable[str] | None = None, *,
                      keep: timedelta = timedelta(days=90),
                      archive: str | None = None) -> RetentionPolicy:
        """Store a retention policy: finished run trees whose top run matches
        ``workflow``, ``owner`` and ``status`` (one final status or several; None: any)
        are deleted ``keep`` after they completed, by ``apply_retention`` (workers call
        it periodically). With ``archive`` (any fsspec URL; ``{owner}``, ``{date}`` and
        ``{workflow}`` are filled in) each batch is written there and verified first.
        A policy with the same selector is replaced.

        Example: ``ledger.set_retention(workflow="etl", keep=timedelta(days=90),
        archive="file:///data/{owner}/{date}.jsonl.gz")``
        """
        workflow = validation.optional_name(workflow, "the workflow of a policy")
        owner = validation.optional_name(owner, "the owner of a policy")
        if self.owner is not None:
            owner = self._owner_for(owner)
        statuses = _statuses(status)
        if not isinstance(keep, timedelta) or keep < timedelta(0):
            raise ConfigurationError(f"keep is how long a finished run is kept: a timedelta "
                                     f"of 0 or more, not {keep!r}")
        if archive is not None:
            archives.check_template(archive)
        now = ids.now_us()
        row = RetentionPolicyRow(policy_id(workflow, owner, statuses), workflow, owner,
                                 ",".join(statuses), int(keep.total_seconds() * 1_000_000),
                                 archive, now, now)
        self.store.save_retention_policy(row)
        return next(p for p in self.retention_policies() if p.id == row.id)

    def retention_policies(self) -> list[RetentionPolicy]:
        """The stored retention policies, by id (an owner-scoped Ledger sees its own).

        Example: ``[p.to_dict() for p in ledger.retention_policies()]``
        """
        return [_policy(row) for row in self.store.retention_policy_rows()
                if self.owner is None or row.owner == self.owner]

    def remove_retention(self, policy: str) -> RetentionPolicy:
        """Delete a retention policy by id; returns it. Raises RetentionPolicyNotFound.

        Example: ``ledger.remove_retention("rp_1a2b3c4d5e6f")``
        """
        found = next((p for p in self.retention_policies() if p.id == policy), None)
        if found is None or not self.store.delete_retention_policy(policy):
            raise RetentionPolicyNotFound(f"no retention policy with id {policy!r} (see "
                                          "flowledger retention ls)")
        return found

    def apply_retention(self, *, dry_run: bool = False, batch: int = BATCH,
                        max_batches: int | None = None) -> RetentionReport:
        """Apply every retention policy now, in batches of at most ``batch`` run trees
        (``max_batches``: stop after that many; None: until nothing is due). One process
        at a time: the others find the lease held and return at once (``busy``). Each
        batch is archived (when the policy says so) and verified before its runs are
        deleted; content of artifacts no run references any more is removed.

        Example: ``ledger.apply_retention(dry_run=True).runs``
        """
        if not 1 <= batch <= 10_000:
            raise ConfigurationError("batch must be between 1 and 10000 run trees")
        policies = self.retention_policies()
        hold: LeaseHold | None = None
        token = ids.new_token()
        if policies and not dry_run:
            got = self.store.acquire_lease(LEASE, self.identity, token, None,
                                           LEASE_DURATION_US)
            if isinstance(got, str):
                return RetentionReport(busy=got)
            hold = got
        total = RetentionReport(dry_run=dry_run)
        try:
            for policy in policies:
                total = self._apply_policy(policy, hold, total, batch, max_batches)
                if max_batches is not None and total.batches >= max_batches:
                    break
        finally:
            if hold is not None:
                self.store.release_lease(hold)
        return total

    def _apply_policy(self, policy: RetentionPolicy, hold: LeaseHold | None, total: RetentionReport,
               batch: int, max_batches: int | None) -> RetentionReport:
        if self.owner is not None and policy.owner not in (None, self.owner):
            return total
        cutoff = ids.now_us() - int(policy.keep.total_seconds() * 1_000_000)
        flt = RunFilter(owner=policy.owner or self.owner, workflow=policy.workflow,
                        status=policy.statuses, until=cutoff, completed_before=cutoff,
                        roots=True)
        trees_n, runs_n, kept, batches = total.trees, total.runs, total.kept, total.batches
        written = list(total.archives)
        before = None
        while max_batches is None or batches < max_batches:
            roots = self.store.list_run_ids(flt, batch, before)
            if not roots:
                break
            before = roots[-1]
            trees, left = select_trees(self.store, roots)
            kept += left
            batches += 1
            if hold is None:  # a dry run
                trees_n += len(trees)
                runs_n += sum(len(tree) for tree in trees)
                continue
            renewed = self.store.acquire_lease(LEASE, self.identity, hold.token, None,
                                               LEASE_DURATION_US)
            if not isinstance(renewed, LeaseHold):
                break  # another process took the duty over: it carries on
            hold = renewed
            done, removed, objects, lost = self._retire(policy, trees, hold)
            trees_n, runs_n = trees_n + done, runs_n + removed
            written.extend(objects)
            if lost:
                break
        return RetentionReport(trees_n, runs_n, kept, tuple(written), hold is None, None,
                               batches)

    def _retire(self, policy: RetentionPolicy, trees: list[list[uuid.UUID]],
                hold: LeaseHold) -> tuple[int, int, list[str], bool]:
        """Archive (when the policy says so) and delete one batch of trees, a group of
        trees per archive object (their owner and workflow). Returns the trees and runs
        deleted, the archive objects written, and whether the lease was lost."""
        if not trees:
            return 0, 0, [], False
        records = {item.run.id: item for item in self.store.archived_runs(
            [run_id for tree in trees for run_id in tree])}
        groups: dict[str, list[list[uuid.UUID]]] = {}
        for tree in trees:
            top = records[tree[0]].run
            url = "" if policy.archive is None else archives.render(
                policy.archive, top.owner, top.workflow, ids.now_us())
            groups.setdefault(url, []).append(tree)
        done = removed = 0
        written: list[str] = []
        blobs = self._runtime.artifacts
        for url, group in groups.items():
            group_ids = [run_id for tree in group for run_id in tree]
            target = None
            if url:
                lines = [archives.encode_tree([records[i] for i in tree], blobs)
                         for tree in group]
                target = archives.write_batch(url, lines, len(group_ids), self.store.sealing).url
            try:
                _, contents = self.store.delete_runs(group_ids, lease=hold)
            except LeaseNotHeld:
                if target is not None:  # its runs stay: the new holder archives them
                    archives.remove(target)
                return done, removed, written, True
            if target is not None:
                written.append(target)
            done, removed = done + len(group), removed + len(group_ids)
            if blobs is not None:
                for owner, digest in self.store.unreferenced(contents):
                    blobs.remove(owner, digest)
        return done, removed, written, False

    def restore_archive(self, url: str) -> RestoreReport:
        """Bring archived run trees back from a retention archive (any fsspec URL; a glob
        such as ``file:///data/alice/*.jsonl.gz`` reads several objects). Each object
        is verified whole (counts, checksums) before anything is written from it. A run
        recorded already is skipped, never duplicated; lineage (parent, fork, resume)
        is kept as it was. Restored runs are finished history: nothing is executed.
        Raises ArchiveError.

        Example: ``ledger.restore_archive("file:///data/alice/2026-12-02.*.jsonl.gz")``
        """
        restored = skipped = 0
        names = []
        for name, lines in archives.read_objects(url, self.store.sealing):
            names.append(name)
            for line in lines:
                trees = archives.decode_tree(line)
                mine = [item for item in trees if self.owner in (None, item.run.owner)]
                skipped += len(trees) - len(mine)
                self._check_finished(mine, name)
                self._restore_contents(line, name)
                done = self.store.restore_runs(mine)
                restored += len(done)
                skipped += len(mine) - len(done)
        return RestoreReport(restored, skipped, tuple(names))

    @staticmethod
    def _check_finished(trees: list[ArchivedRun], name: str) -> None:
        for item in trees:
            if item.run.status not in FINISHED:
                raise ArchiveError(f"{name}: run {item.run.id} is {item.run.status!r}; "
                                   "archives hold finished runs only (damaged or edited)")

    def _restore_contents(self, line: str, name: str) -> None:
        blobs = self._runtime.artifacts
        if blobs is None:
            return
        try:
            found = list(archives.contents(line))
        except ValueError as exc:
            raise ArchiveError(f"{name}: unreadable artifact content ({exc})") from None
        for owner, digest, content in found:
            if self.owner not in (None, owner):
                continue
            if hashlib.sha256(content).hexdigest() != digest:
                raise ArchiveError(f"{name}: artifact content {digest[:12]}… does not match "
                                   "its digest (damaged or edited)")
            blobs.put(owner, content)


__all__ = ["LedgerRetention", "RestoreReport", "RetentionPolicy", "RetentionReport",
           "policy_id"]

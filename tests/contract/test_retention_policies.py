"""Retention policies: stored, applied in batches with archives written and verified
before deletion, restored equal; forks and live trees kept; artifact content collected
only when unreferenced; bad input refused with nothing lost."""

from __future__ import annotations

import gzip
import importlib.util
import json
import logging
import textwrap
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import fsspec
import pytest
import sqlalchemy as sa
from fsspec.implementations.memory import MemoryFileSystem
from sqlalchemy import update

import flowledger as fl
from flowledger.artifacts import ArtifactStore
from flowledger.errors import ArchiveError, ConfigurationError, RetentionPolicyNotFound
from flowledger.store.schema import runs

log = logging.getLogger("retention-test")


@fl.step(retries=1, backoff=0)
def flaky(x: int) -> int:
    log.warning("working on %s", x)
    fl.record_usage("gpt-4o", input_tokens=100 + x, output_tokens=7, provider="openai")
    fl.context.set("seen", {"x": x})
    fl.artifacts.save("shared.txt", "the same content in every run")
    fl.artifacts.save(f"own-{x}.bin", bytes(range(x % 200, x % 200 + 50)))
    if fl.current_step().attempt == 1:
        raise ValueError("first attempt fails")
    return x * 2


@fl.workflow(name="rp_child")
def rp_child(x: int) -> int:
    return flaky(x)


@fl.step()
def total(a: int, b: int) -> int:
    return a + b


@fl.workflow(name="rp_top")
def rp_top(x: int) -> int:
    return total(rp_child(x), flaky(x + 1))


@fl.workflow(name="rp_other")
def rp_other(x: int) -> int:
    return total(x, 1)


@fl.workflow(name="rp_waiter")
def rp_waiter() -> Any:
    return fl.wait_for_event("go", timeout=30)


def _snapshot(ledger: fl.Ledger, run_id: str) -> dict[str, Any]:
    run = ledger.get(run_id)
    arts = ledger.artifacts(run_id)
    return {"run": run.to_dict(),
            "logs": [entry.to_dict() for entry in ledger.logs(run_id)],
            # An event's id is a sequence number of the database: a restore makes new ones.
            "events": [{k: v for k, v in event.to_dict().items() if k != "id"}
                       for event in ledger.sent_events(run_id)],
            "artifacts": {info.key: arts.read_bytes(info.key) for info in arts.list()}}


def _tree(ledger: fl.Ledger, x: int) -> list[str]:
    top = ledger.start(rp_top, x, tags=["keep-me"]).id
    ledger.handle(top).result(timeout=30)
    kid = ledger.get(top).steps[0].child_run_id
    assert kid is not None
    return [top, kid]


def test_policies_are_stored_replaced_listed_and_removed(ledger: fl.Ledger) -> None:
    first = ledger.set_retention(workflow="etl", keep=timedelta(days=90),
                                 archive="file:///data/{owner}/{date}.jsonl.gz")
    again = ledger.set_retention(workflow="etl", keep=timedelta(days=30))
    assert again.id == first.id and again.keep == timedelta(days=30) and again.archive is None
    other = ledger.set_retention(owner="alice", status=["failed", "cancelled"],
                                 keep=timedelta(hours=1))
    assert other.statuses == ("cancelled", "failed")
    assert {p.id for p in ledger.retention_policies()} == {first.id, other.id}
    assert ledger.remove_retention(first.id).workflow == "etl"
    assert [p.id for p in ledger.retention_policies()] == [other.id]
    with pytest.raises(RetentionPolicyNotFound, match="no retention policy with id 'rp_nope'"):
        ledger.remove_retention("rp_nope")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"archive": "file:///x/{customer}.jsonl.gz"}, "unknown placeholder {customer}"),
    ({"archive": "nosuchproto://bucket/{date}.jsonl.gz"}, "no protocol 'nosuchproto'"),
    ({"keep": timedelta(days=-3)}, "keep is how long"),
    ({"status": "running"}, "finished runs"),
])
def test_bad_policies_are_refused(ledger: fl.Ledger, kwargs: dict[str, Any],
                                  message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ledger.set_retention(**kwargs)
    assert ledger.retention_policies() == []


def test_archive_then_restore_brings_every_tree_back_equal(ledger: fl.Ledger,
                                                          tmp_path: Path) -> None:
    trees = [_tree(ledger, x) for x in (1, 2, 3)]
    young = ledger.start(rp_other, 5).id
    ledger.handle(young).result(timeout=30)
    before = {run_id: _snapshot(ledger, run_id) for tree in trees for run_id in tree}
    ledger.set_retention(workflow="rp_top", keep=timedelta(0),
                         archive=f"file://{tmp_path}/{{owner}}/{{workflow}}/{{date}}.jsonl.gz")
    ledger.set_retention(workflow="rp_other", keep=timedelta(days=1))  # not due yet

    report = ledger.apply_retention(batch=2)
    assert (report.trees, report.runs, report.kept) == (3, 6, 0)
    assert len(report.archives) == 2  # two batches, one object each
    for run_id in before:
        with pytest.raises(fl.RunNotFound):
            ledger.get(run_id)
    assert ledger.get(young).status is fl.RunStatus.COMPLETED
    blobs = ArtifactStore(ledger.artifacts_url)  # content no run references is gone
    digests = {(a["digest"]) for snap in before.values() for a in snap["run"]["artifacts"]}
    assert len(digests) == 5  # own-1 … own-4, shared.txt
    assert not any(blobs.fs.exists(blobs.path("default", d)) for d in digests)

    files = sorted((tmp_path / "default" / "rp_top").glob("*.jsonl.gz"))
    assert len(files) == 2
    lines = [json.loads(line) for f in files
             for line in gzip.decompress(f.read_bytes()).decode().splitlines()]
    archived = [entry["run"]["id"] for line in lines
                if line["format"] == "flowledger.archive" for entry in line["runs"]]
    assert sorted(archived) == sorted(before)

    restored = ledger.restore_archive(f"file://{tmp_path}/default/rp_top/*.jsonl.gz")
    assert (restored.restored, restored.skipped) == (6, 0)
    assert {run_id: _snapshot(ledger, run_id) for run_id in before} == before
    again = ledger.restore_archive(f"file://{tmp_path}/default/rp_top/*.jsonl.gz")
    assert (again.restored, again.skipped) == (0, 6)  # never duplicated
    assert ledger.get(trees[0][1]).parent_id == trees[0][0]


def test_memory_archive_within_one_process(ledger: fl.Ledger) -> None:
    tree = _tree(ledger, 7)
    waiter = ledger.start(rp_waiter)
    ledger.send_event(waiter.id, "unused", [1, 2])
    ledger.send_event(waiter.id, "go", {"k": "v"})
    assert waiter.result(timeout=30) == {"k": "v"}
    tree.append(waiter.id)
    before = {run_id: _snapshot(ledger, run_id) for run_id in tree}
    folder = f"memory://rp-{uuid.uuid4().hex}"
    ledger.set_retention(keep=timedelta(0), archive=folder + "/{owner}/{date}.jsonl.gz")
    report = ledger.apply_retention()
    assert report.runs == 3 and len(report.archives) == 1
    assert report.archives[0].startswith(folder)
    assert ledger.runs().runs == ()
    assert ledger.restore_archive(report.archives[0]).restored == 3
    assert [e.name for e in ledger.sent_events(waiter.id)] == ["unused", "go"]
    assert {run_id: _snapshot(ledger, run_id) for run_id in tree} == before


def test_forked_and_live_trees_are_kept_until_they_can_go(ledger: fl.Ledger) -> None:
    source = _tree(ledger, 11)
    fork = ledger.fork(source[0], 2, queue="later").id  # pending: live, not due
    paused = _tree(ledger, 13)
    with ledger.store.backend.engine.begin() as conn:  # a child still paused
        conn.execute(update(runs).where(runs.c.id == uuid.UUID(paused[1]))
                     .values(status="paused"))
    ledger.set_retention(keep=timedelta(0))
    report = ledger.apply_retention()
    # The source tree is referenced by its fork; the other tree has a paused member.
    assert (report.runs, report.kept) == (0, 2)
    assert ledger.get(source[1]).status is fl.RunStatus.COMPLETED
    ledger.cancel(fork)
    report = ledger.apply_retention()
    assert (report.runs, report.kept) == (3, 1)  # the fork and its source's tree go
    with pytest.raises(fl.RunNotFound):
        ledger.get(source[0])
    assert ledger.get(paused[1]).status is fl.RunStatus.PAUSED
    with ledger.store.backend.engine.begin() as conn:
        conn.execute(update(runs).where(runs.c.id == uuid.UUID(paused[1]))
                     .values(status="cancelled"))
    assert ledger.apply_retention().runs == 2
    assert ledger.runs().runs == ()


def test_artifact_content_is_kept_while_another_run_references_it(ledger: fl.Ledger) -> None:
    old = _tree(ledger, 21)
    ledger.set_retention(workflow="rp_top", keep=timedelta(0))
    survivor = ledger.start(rp_child, 21).id  # same content as the old child
    ledger.handle(survivor).result(timeout=30)
    ledger.apply_retention()
    with pytest.raises(fl.RunNotFound):
        ledger.get(old[1])
    arts = ledger.artifacts(survivor)
    assert arts.read_bytes("shared.txt") == b"the same content in every run"
    assert arts.read_bytes("own-21.bin") == bytes(range(21, 71))


def test_an_archive_that_cannot_be_written_deletes_nothing(ledger: fl.Ledger,
                                                           tmp_path: Path) -> None:
    tree = _tree(ledger, 31)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the archive's folder should be")
    ledger.set_retention(keep=timedelta(0), archive=f"file://{blocker}/{{date}}.jsonl.gz")
    with pytest.raises(ArchiveError, match="nothing was deleted"):
        ledger.apply_retention()
    assert [ledger.get(run_id).status for run_id in tree] == [fl.RunStatus.COMPLETED] * 2
    # The lease was let go: the next apply (after fixing the policy) goes ahead.
    ledger.set_retention(keep=timedelta(0), archive=f"file://{tmp_path}/ok/{{date}}.jsonl.gz")
    assert ledger.apply_retention().runs == 2


def test_restoring_what_is_not_an_archive_is_refused_and_writes_nothing(
        ledger: fl.Ledger, tmp_path: Path) -> None:
    plain = tmp_path / "plain.jsonl.gz"
    plain.write_bytes(b"not gzip at all")
    with pytest.raises(ArchiveError, match="not a gzip JSON Lines retention archive"):
        ledger.restore_archive(str(plain))
    export = tmp_path / "export.jsonl.gz"
    run_id = ledger.start(rp_other, 1).id
    ledger.handle(run_id).result(timeout=30)
    ledger.purge(timedelta(0), archive=str(export))
    with pytest.raises(ArchiveError, match="not a retention archive"):
        ledger.restore_archive(f"file://{export}")
    with pytest.raises(ArchiveError, match=r"no archive at|cannot read archive"):
        ledger.restore_archive(f"file://{tmp_path}/missing.jsonl.gz")
    # A real archive, cut short: refused whole, nothing restored.
    _tree(ledger, 41)
    ledger.set_retention(keep=timedelta(0), archive=f"file://{tmp_path}/a/{{date}}.jsonl.gz")
    written = ledger.apply_retention().archives[0]
    path = Path(written.removeprefix("file://"))
    text = gzip.decompress(path.read_bytes()).decode().splitlines()
    path.write_bytes(gzip.compress("\n".join(text[:-1]).encode()))
    with pytest.raises(ArchiveError, match="without its batch trailer"):
        ledger.restore_archive(written)
    assert ledger.runs().runs == ()


def test_dry_run_counts_and_deletes_nothing(ledger: fl.Ledger) -> None:
    _tree(ledger, 51)
    ledger.set_retention(keep=timedelta(0))
    report = ledger.apply_retention(dry_run=True)
    assert (report.dry_run, report.trees, report.runs, report.archives) == (True, 1, 2, ())
    assert len(ledger.runs().runs) == 2



def test_a_protocol_whose_package_is_missing_fails_at_apply_and_deletes_nothing(
        ledger: fl.Ledger) -> None:
    assert importlib.util.find_spec("dropboxdrivefs") is None  # the premise of this test
    tree = _tree(ledger, 61)
    ledger.set_retention(keep=timedelta(0), archive="dropbox://team/{date}.jsonl.gz")
    with pytest.raises(ArchiveError, match="cannot open archive"):
        ledger.apply_retention()
    assert [ledger.get(run_id).status for run_id in tree] == [fl.RunStatus.COMPLETED] * 2


def test_a_spec_run_restored_into_another_ledger_brings_its_text(
        ledger: fl.Ledger, tmp_path: Path) -> None:
    flow = fl.parse_spec(textwrap.dedent("""
        flowledger: 1
        name: rp_spec
        inputs: {n: {type: integer}}
        steps: [{id: only, set: {n: "{{ inputs.n }}"}}]
        """), "rp.yaml")
    run_id = ledger.start(flow, n=4).id
    ledger.handle(run_id).result(timeout=30)
    before = _snapshot(ledger, run_id)
    ledger.set_retention(keep=timedelta(0), archive=f"file://{tmp_path}/{{date}}.jsonl.gz")
    (written,) = ledger.apply_retention().archives
    with fl.Ledger(f"sqlite:///{tmp_path / 'elsewhere.db'}",
                   artifacts=str(tmp_path / "elsewhere-artifacts")) as other:
        assert other.restore_archive(written).restored == 1
        assert _snapshot(other, run_id) == before
        fork = other.fork(run_id, 1)  # its recorded spec text came along
        assert fork.result(timeout=30) == {"n": 4}


class LossyFileSystem(MemoryFileSystem):  # type: ignore[misc]
    """A filesystem that loses the first line of what it stores: what verification is
    for (a real fsspec filesystem, registered for this test)."""

    protocol = ("lossy",)
    root_marker = "/"

    def cat_file(self, path: str, start: int | None = None, end: int | None = None,
                 **kwargs: Any) -> bytes:
        data = super().cat_file(path, start, end, **kwargs)
        lines = gzip.decompress(data).decode().splitlines(keepends=True)
        return gzip.compress("".join(lines[1:]).encode())


def test_an_archive_that_reads_back_differently_deletes_nothing(ledger: fl.Ledger) -> None:
    fsspec.register_implementation("lossy", LossyFileSystem, clobber=True)
    tree = _tree(ledger, 71)
    ledger.set_retention(keep=timedelta(0), archive="lossy://rp/{date}.jsonl.gz")
    with pytest.raises(ArchiveError, match=r"failed verification.*nothing was deleted"):
        ledger.apply_retention()
    assert [ledger.get(run_id).status for run_id in tree] == [fl.RunStatus.COMPLETED] * 2
    assert LossyFileSystem().glob("/rp/*") == []  # the bad object was removed


def test_an_object_already_at_the_archive_path_is_never_touched(ledger: fl.Ledger,
                                                              tmp_path: Path) -> None:
    _tree(ledger, 81)
    ledger.set_retention(keep=timedelta(0), archive=f"file://{tmp_path}/fixed.jsonl.gz")
    earlier = tmp_path / "fixed.jsonl.gz"
    earlier.write_bytes(gzip.compress(b"what another tool wrote there\n"))
    (written,) = ledger.apply_retention().archives
    assert written != f"file://{earlier}" and written.endswith(".jsonl.gz")
    assert gzip.decompress(earlier.read_bytes()) == b"what another tool wrote there\n"


def _all_text(url: str) -> list[str]:
    """Every text value of every flowledger table."""
    engine = sa.create_engine(url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            return [str(v) for table in meta.sorted_tables
                    if table.name.startswith("flowledger_")
                    for row in conn.execute(sa.select(table)) for v in row
                    if isinstance(v, str)]
    finally:
        engine.dispose()


@pytest.mark.parametrize("per_owner", [False, True])
def test_encrypted_runs_are_archived_as_records_and_restored_sealed(
        db_url: str, tmp_path: Path, per_owner: bool) -> None:
    from tests.contract import test_encryption as enc  # noqa: PLC0415 (its workflows)

    mark = enc.MARK
    blobs = tmp_path / "blobs"
    with fl.Ledger(db_url, encryption=enc.keyring("k1", per_owner=per_owner),
                   artifacts=str(blobs)) as ledger:
        run_id = ledger.start(enc.enc_flow, f"input {mark}").id
        ledger.result(run_id)
        waiting = ledger.start(enc.enc_waits)
        ledger.send_event(waiting.id, "approve", {"by": f"event {mark}"})
        ledger.result(waiting.id)
        kept = [r.id for r in ledger.runs().runs]
        before = {i: _snapshot(ledger, i) for i in kept}
        ledger.set_retention(keep=timedelta(0),
                             archive=f"file://{tmp_path}/arch/{{date}}.jsonl.gz")
        (written,) = ledger.apply_retention().archives
        # The archive object is sealed whole with the primary key: no plaintext in it;
        # inside, the records (opened), not the store's ciphertexts.
        stored = Path(written.removeprefix("file://")).read_bytes()
        assert mark.encode() not in stored and stored.startswith(b"FLENC1\n")
        text = gzip.decompress(ledger.store.sealing.open_archive(stored)).decode()
        assert mark in text and "flenc1:" not in text
        with fl.Ledger(db_url, artifacts=str(blobs)) as keyless, \
                pytest.raises(fl.PayloadKeyMissing, match="archive is encrypted with key 'k1'"):
            keyless.restore_archive(written)
        assert ledger.restore_archive(written).restored == len(kept) == 2
        assert {i: _snapshot(ledger, i) for i in kept} == before
        assert ledger.get(run_id).context["note"] == f"context {mark}"
    # Restored through the store: sealed again, no plaintext in the database or blobs.
    values = _all_text(db_url)
    assert not [v for v in values if mark in v]
    assert any(v.startswith("flenc1:k1:") for v in values)
    assert not [p for p in blobs.rglob("*") if p.is_file() and mark.encode() in p.read_bytes()]

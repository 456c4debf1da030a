"""Artifacts through file and memory stores, dedup, keys, GC and offloaded outputs."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import flowledger as fl


@pytest.fixture(params=["file", "memory"])
def art_ledger(request: pytest.FixtureRequest, db_url: str,
               tmp_path: Path) -> Iterator[fl.Ledger]:
    url = (str(tmp_path / "artifacts") if request.param == "file"
           else f"memory://flowledger-tests/{uuid.uuid4().hex}")
    with fl.Ledger(db_url, artifacts=url, offload_bytes=4096) as ledger:
        yield ledger


BLOB = bytes(range(256)) * 4


@fl.step()
def produce(label: str) -> list[str]:
    fl.artifacts.save("raw/blob.bin", BLOB)
    fl.artifacts.save("notes.md", f"# {label}\nnon-ascii: é")
    fl.artifacts.save("data/summary.json", {"label": label, "n": [1, 2]})
    fl.artifacts.save("custom.csv", "a,b\n1,2\n", media_type="text/csv")
    assert fl.artifacts.exists("notes.md") and not fl.artifacts.exists("nope")
    return [a.key for a in fl.artifacts.list("data/")]


@fl.workflow(name="art_produce")
def producing(label: str) -> list[str]:
    keys = produce(label)
    assert fl.artifacts.get("raw/blob.bin") == BLOB  # the workflow body reads them too
    return keys


def test_round_trip_of_bytes_text_and_json(art_ledger: fl.Ledger) -> None:
    handle = art_ledger.start(producing, "one")
    assert handle.result(timeout=30) == ["data/summary.json"]
    arts = art_ledger.artifacts(handle.id)
    assert arts.get("raw/blob.bin") == BLOB
    assert arts.get("notes.md") == "# one\nnon-ascii: é"
    assert arts.get("data/summary.json") == {"label": "one", "n": [1, 2]}
    assert arts.get("custom.csv") == "a,b\n1,2\n"
    info = arts.info("raw/blob.bin")
    assert (info.size, info.digest, info.media_type, info.position) == (
        len(BLOB), hashlib.sha256(BLOB).hexdigest(), "application/octet-stream", 1)
    assert [a.key for a in arts.list()] == ["custom.csv", "data/summary.json", "notes.md",
                                            "raw/blob.bin"]
    with pytest.raises(fl.ArtifactNotFound, match="no artifact 'missing'"):
        arts.get("missing")


def test_identical_content_is_stored_once_per_owner(art_ledger: fl.Ledger) -> None:
    first = art_ledger.start(producing, "same")
    second = art_ledger.start(producing, "same")
    first.result(timeout=30)
    second.result(timeout=30)
    blobs = art_ledger._runtime.artifacts
    assert blobs is not None
    stored = [p for p in blobs.fs.find(blobs.root) if not p.endswith(".tmp")]
    assert len(stored) == 4  # 8 references, 4 distinct contents
    other = art_ledger.start(producing, "same", owner="globex")
    other.result(timeout=30)
    assert len(blobs.fs.find(blobs.root)) == 8  # another owner never shares content
    digest = hashlib.sha256(BLOB).hexdigest()
    assert blobs.path("default", digest) != blobs.path("globex", digest)


@pytest.mark.parametrize("bad", ["../escape", "/abs/path", "a/../b", "tab\there", "",
                                 "x" * 513, "C:\\windows", "./here", "dir/", "a//b"])
def test_bad_keys_are_rejected(art_ledger: fl.Ledger, bad: str) -> None:
    run_id = art_ledger.start(producing, "k").id
    art_ledger.handle(run_id).result(timeout=30)
    with pytest.raises(fl.ConfigurationError, match="artifact key"):
        art_ledger.artifacts(run_id).save(bad, b"x")


def test_delete_and_purge_collect_orphaned_content(art_ledger: fl.Ledger) -> None:
    keep = art_ledger.start(producing, "keep")
    drop = art_ledger.start(producing, "drop")
    keep.result(timeout=30)
    drop.result(timeout=30)
    blobs = art_ledger._runtime.artifacts
    assert blobs is not None
    before = set(blobs.fs.find(blobs.root))
    arts = art_ledger.artifacts(drop.id)
    arts.save("only-here.txt", "unique to the dropped run")
    assert len(set(blobs.fs.find(blobs.root))) == len(before) + 1
    assert arts.delete("only-here.txt") is True and arts.delete("only-here.txt") is False
    assert set(blobs.fs.find(blobs.root)) == before

    art_ledger.cancel(keep.id)  # finished already: no-op; only finished runs are purged
    report = art_ledger.purge(timedelta(0), status="completed")
    assert report.runs == 2
    assert blobs.fs.find(blobs.root) == []  # nothing references any content now


def test_oversized_output_becomes_an_artifact_and_reads_back(art_ledger: fl.Ledger) -> None:
    big = {"rows": [{"i": i, "text": "x" * 50} for i in range(200)]}
    calls = {"n": 0}

    @fl.step()
    def large() -> dict[str, list[dict[str, object]]]:
        calls["n"] += 1
        return big

    @fl.step()
    def then_fail(rows: int) -> int:
        if calls["n"] == 1:
            raise RuntimeError("fail once so the resume replays the large output")
        return rows

    @fl.workflow(name="art_offload")
    def wf() -> int:
        return then_fail(len(large()["rows"]))

    with pytest.raises(fl.RunFailed) as info:
        art_ledger.run(wf)
    run_id = info.value.run_id
    calls["n"] = 2
    assert art_ledger.resume(run_id).result(timeout=30) == 200
    run = art_ledger.get(run_id)
    assert run.steps[0].output == big  # read back identical through the reference
    raw = art_ledger.store.get_steps(uuid.UUID(run_id))[0].output
    assert raw == "@artifact:_outputs/1"
    assert [a.key for a in art_ledger.artifacts(run_id).list("_outputs/")] == ["_outputs/1"]
    fork = art_ledger.fork(run_id, from_position=2)
    assert fork.result(timeout=30) == 200  # the fork replays the offloaded output too
    assert art_ledger.get(fork.id).steps[0].output == big


def test_artifacts_outside_a_run() -> None:
    with pytest.raises(fl.NotInRun):
        fl.artifacts.save("x", b"y")


def test_overwritten_content_is_collected(art_ledger: fl.Ledger) -> None:
    run_id = art_ledger.start(producing, "ow").id
    art_ledger.handle(run_id).result(timeout=30)
    blobs = art_ledger._runtime.artifacts
    assert blobs is not None
    arts = art_ledger.artifacts(run_id)
    before = len(blobs.fs.find(blobs.root))
    arts.save("notes.md", "replaced once")
    arts.save("notes.md", "replaced twice")
    assert arts.get("notes.md") == "replaced twice"
    assert len(blobs.fs.find(blobs.root)) == before  # each old version's content is gone


def test_unreadable_offloaded_output_leaves_the_trace_readable(db_url: str,
                                                               tmp_path: Path) -> None:

    @fl.step()
    def big() -> str:
        return "y" * 10_000

    @fl.workflow(name="art_unreadable")
    def wf() -> int:
        return len(big())

    store = tmp_path / "blobs"
    with fl.Ledger(db_url, artifacts=str(store), offload_bytes=1000) as ledger:
        run_id = ledger.start(wf).id
        ledger.handle(run_id).result(timeout=30)
        shutil.rmtree(store)  # e.g. read from a machine without that folder
        run = ledger.get(run_id)
        assert run.status is fl.RunStatus.COMPLETED and run.output == 10_000
        note = run.steps[0].output
        assert note["$artifact"] == "_outputs/1" and "unavailable" in note

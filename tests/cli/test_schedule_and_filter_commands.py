"""flowledger schedule (time zones, macros, pause, resume, trigger) and the listing
filters of flowledger runs (parent column, --top-level, --parent, --forked-from)."""

from __future__ import annotations

import flowledger as fl
from tests.cli.conftest import CLI


def test_schedule_zones_macros_pause_resume_trigger(cli: CLI, db_url: str) -> None:
    added = cli("schedule", "add", "tests.helpers.cli_flows:greet", "--cron", "0 9 * * 1-5",
                "--tz", "Europe/Berlin", "--name", "standup", "-i", "name=ada", "--json")
    assert added.code == 0, added.err
    assert added.json()["timezone"] == "Europe/Berlin" and added.json()["paused_at"] is None
    daily = cli("schedule", "add", "tests.helpers.cli_flows:greet", "--cron", "@daily",
                "--name", "digest", "-i", "name=bo")
    assert daily.code == 0, daily.err
    listed = cli("schedule", "ls").out
    assert "Europe/Berlin" in listed and "@daily" in listed and "UTC" in listed
    # a zoned schedule's next tick reads as its zone's wall clock, named
    standup = next(line for line in listed.splitlines() if "standup" in line)
    assert " 09:00:00 CE" in standup  # CET or CEST, by the date

    assert cli("schedule", "pause", "standup").out.strip() == "standup: paused"
    assert cli("schedule", "pause", "standup").out.strip() == "standup: already paused"
    rows = {s["name"]: s for s in cli("schedule", "ls", "--json").json()}
    assert rows["standup"]["paused_at"] is not None and rows["digest"]["paused_at"] is None
    assert "paused" in cli("schedule", "ls").out

    triggered = cli("schedule", "trigger", "standup")
    assert triggered.code == 0, triggered.err
    with fl.Ledger(db_url) as ledger:
        run = ledger.get(triggered.out.strip(), steps=False)
        assert (run.workflow, run.status, run.tags) == (
            "cli_greet", fl.RunStatus.PENDING, ("schedule:standup",))
    assert cli("schedule", "resume", "standup").out.strip() == "standup: resumed"
    assert cli("schedule", "resume", "standup").out.strip() == "standup: was not paused"

    missing = cli("schedule", "trigger", "nope")
    assert missing.code == 3 and "no schedule named 'nope'" in missing.err
    zone = cli("schedule", "add", "tests.helpers.cli_flows:greet", "--cron", "0 9 * * *",
               "--tz", "Nowhere/Town", "-i", "name=x")
    assert zone.code == 2 and "unknown time zone 'Nowhere/Town'" in zone.err
    macro = cli("schedule", "add", "tests.helpers.cli_flows:greet", "--cron", "@often",
                "-i", "name=x")
    assert macro.code == 2 and "unknown cron macro '@often'" in macro.err
    assert [s["name"] for s in cli("schedule", "ls", "--json").json()] == ["digest",
                                                                         "standup"]


def test_runs_lists_parents_and_filters_by_lineage(cli: CLI, db_url: str) -> None:
    assert cli("run", "tests.helpers.cli_flows:family", "-i", "name=ada").code == 0
    with fl.Ledger(db_url) as ledger:
        (parent,) = ledger.runs(workflow="cli_family").runs
        children = {run.id for run in ledger.runs(parent=parent.id).runs}
        assert len(children) == 2
        fork = ledger.fork(parent.id, 2)
        fork.result(timeout=60)

    def listed(*args: str) -> set[str]:
        result = cli("runs", "--json", "--limit", "100", *args)
        assert result.code == 0, result.err
        return {run["id"] for run in result.json()["runs"]}

    assert listed("--parent", parent.id[:13]) == children
    assert listed("--forked-from", parent.id) == {fork.id}
    top = listed("--top-level")
    assert top == {parent.id, fork.id}
    table = cli("runs", "--workflow", "cli_greet").out
    assert "parent" in table.splitlines()[0]
    rows = [line for line in table.splitlines()[1:] if parent.id[:13] in line]
    assert len(rows) == 2  # each child names its parent (the parent is not a cli_greet run)
    assert all(line.split()[0] != parent.id[:13] for line in rows)
    assert "no runs match" in cli("runs", "--executor", "no-such-host:").err


def test_bulk_resume_from_the_cli(cli: CLI, db_url: str) -> None:
    with fl.Ledger(db_url) as ledger:
        queued = ledger.submit(fl.workflow(name="cli_bulk_noop")(lambda: 1), queue="q1")
        local = ledger.submit(fl.workflow(name="cli_bulk_noop")(lambda: 1), queue="q2")
    assert cli("cancel", "--queue", "q1").out.strip() == "cancelled 1 run"
    assert cli("cancel", "--queue", "q2", "--json").json()["run_ids"] == [local.id]
    refused = cli("resume")
    assert refused.code == 2 and "--all" in refused.err
    dry = cli("resume", "--status", "cancelled", "--queue", "q1", "--dry-run")
    assert dry.out.splitlines() == [queued.id, "would resume 1 run"]
    assert queued.status() is fl.RunStatus.CANCELLED
    done = cli("resume", "--status", "cancelled", "--to-queue", "retry")
    assert done.code == 0 and done.out.strip() == "resumed 2 runs"
    with fl.Ledger(db_url) as ledger:
        assert {ledger.get(h.id, steps=False).queue for h in (queued, local)} == {"retry"}
    assert {h.status() for h in (queued, local)} == {fl.RunStatus.PENDING}
    wrong = cli("resume", "--status", "running", "--all")
    assert wrong.code == 2 and "can be resumed" in wrong.err

"""Every command end to end against a real SQLite file and PostgreSQL."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import flowledger as fl
from flowledger.cli import main, render
from flowledger.store.migrate import head_revision
from flowledger.workflow import load_entrypoint
from tests.cli.conftest import CLI
from tests.contract import test_context
from tests.contract.test_artifacts import BLOB
from tests.helpers import cli_flows


def test_run_prints_the_output_and_records_options(cli: CLI, db_url: str) -> None:
    result = cli("run", "tests.helpers.cli_flows:greet", "-i", "name=ada", "--input", "mark=?",
                 "--owner", "team", "--tag", "a", "-t", "b")
    assert result.code == 0, result.err
    assert json.loads(result.out) == {"greeting": "ADA?"}
    run_id = result.err.split("run ", 1)[1].split()[0]
    with fl.Ledger(db_url) as ledger:
        run = ledger.get(run_id)
        assert (run.owner, run.tags, run.inputs) == ("team", ("a", "b"),
                                                      {"name": "ada", "mark": "?"})


def test_run_from_a_file_with_json_inputs(cli: CLI, tmp_path: Path) -> None:
    inputs = tmp_path / "in.json"
    inputs.write_text('{"name": "bo", "mark": "."}')
    result = cli("run", "tests/helpers/cli_flows.py:greet", "--input-json", str(inputs),
                 "--json")
    assert result.code == 0, result.err
    record = result.json()
    assert record["output"] == {"greeting": "BO."} and record["status"] == "completed"
    # The file was already imported as a module here, so the importable name is recorded.
    assert load_entrypoint(record["entrypoint"]).name == "cli_greet"
    assert [s["name"] for s in record["steps"]] == ["shout", "punctuate"]


def test_failed_run_exits_1_with_one_line(cli: CLI) -> None:
    cli_flows.attempts["flaky"] = 0
    result = cli("run", "tests.helpers.cli_flows:flaky", "-i", "n=-3")
    assert result.code == 1
    assert "error: run" in result.err and "negative on first try" in result.err
    assert "Traceback" not in result.err


def test_usage_errors_exit_2_and_not_found_exits_3(cli: CLI) -> None:
    assert cli("runs", "--status", "bogus").code == 2
    assert cli("run", "tests.helpers.cli_flows:greet", "-i", "novalue").code == 2
    assert cli("runs", "--limit", "x").code == 2
    missing = cli("inspect", "0000")
    assert missing.code == 3 and missing.err.strip() == "error: no run with id '0000'"
    assert cli("run", "tests.helpers.cli_flows:nope").code == 3
    assert cli("resume", "not-an-id").code == 3
    debug = cli("--debug", "inspect", "0000")
    assert debug.code == 3 and "Traceback" in debug.err


def test_runs_table_json_filters_and_cursor(cli: CLI) -> None:
    ids = []
    for name in ("a", "b", "c"):
        result = cli("run", "tests.helpers.cli_flows:greet", "-i", f"name={name}", "-t", name)
        ids.append(result.err.split("run ", 1)[1].split()[0])
    table = cli("runs")
    assert table.code == 0 and all(i[:13] in table.out for i in ids)
    page = cli("runs", "--json", "--limit", "2").json()
    assert [r["id"] for r in page["runs"]] == ids[::-1][:2]
    rest = cli("runs", "--json", "--limit", "2", "--cursor", page["next_cursor"]).json()
    assert [r["id"] for r in rest["runs"]] == [ids[0]] and rest["next_cursor"] is None
    assert [r["id"] for r in cli("runs", "--json", "--tag", "b").json()["runs"]] == [ids[1]]
    assert cli("runs", "--json", "--status", "failed").json()["runs"] == []
    assert len(cli("runs", "--json", "--since", "1h").json()["runs"]) == 3
    assert cli("runs", "--json", "--until", "2020-01-01").json()["runs"] == []
    assert len(cli("runs", "--json", "--workflow", "cli_greet", "--owner", "default")
               .json()["runs"]) == 3


def test_inspect_shows_header_steps_timeline_and_children(cli: CLI) -> None:
    result = cli("run", "tests.helpers.cli_flows:family", "-i", "name=x")
    run_id = result.err.split("run ", 1)[1].split()[0]
    view = cli("inspect", run_id[:20])
    assert view.code == 0, view.err
    for expected in (run_id, "cli_family v1", "completed", "timeline", "child runs",
                     "cli_greet", "2 total: 2 completed"):
        assert expected in view.out, expected
    record = cli("inspect", run_id, "--json").json()
    assert len(record["children"]) == 2
    assert record["children"][0]["steps"][0]["name"] == "shout"


def test_resume_cancel_fork_and_diff(cli: CLI) -> None:
    cli_flows.attempts["flaky"] = 0
    failed = cli("run", "tests.helpers.cli_flows:flaky", "-i", "n=-3")
    run_id = failed.err.split("run ", 1)[1].split()[0]
    resumed = cli("resume", run_id)
    assert resumed.code == 0 and resumed.out.strip() == "4"
    assert cli("inspect", run_id, "--json").json()["recovery_attempts"] == 1

    cancelled = cli("cancel", run_id)
    assert cancelled.code == 0 and "already finished (completed)" in cancelled.out
    assert cli("cancel", run_id, "--json").json() == {"run_id": run_id, "cancelled": False,
                                                      "status": "completed"}

    fork = cli("fork", run_id, "--from-step", "1", "-i", "n=5", "--json")
    assert fork.code == 0, fork.err
    forked = fork.json()
    assert forked["output"] == 6 and forked["forked_from"] == run_id
    diff = cli("diff", run_id, forked["id"])
    assert diff.code == 0 and "changed" in diff.out and "-3" in diff.out
    as_json = cli("diff", run_id, forked["id"], "--json").json()
    assert as_json["steps"][0]["output_changed"] is True
    assert cli("fork", run_id, "--from-step", "9").code == 2


def test_recover_and_cancel_of_a_live_run(cli: CLI) -> None:
    nothing = cli("recover")
    assert nothing.code == 0 and "nothing to recover" in nothing.err


def test_stats(cli: CLI) -> None:
    cli_flows.attempts["flaky"] = 0
    cli("run", "tests.helpers.cli_flows:flaky", "-i", "n=-1")
    cli("run", "tests.helpers.cli_flows:flaky", "-i", "n=2")
    stats = cli("stats", "--json").json()
    flaky = next(w for w in stats["workflows"] if w["workflow"] == "cli_flaky")
    assert (flaky["runs"], flaky["completed"], flaky["failed"]) == (2, 1, 1)
    assert flaky["success_rate"] == 0.5 and flaky["p50"] is not None
    step = next(s for s in stats["steps"] if s["name"] == "sometimes")
    assert (step["count"], step["failed"], step["failure_rate"]) == (2, 1, 0.5)
    table = cli("stats", "--workflow", "cli_flaky", "--since", "1d")
    assert table.code == 0 and "50.0%" in table.out and "sometimes" in table.out


def test_export_formats(cli: CLI, tmp_path: Path) -> None:
    for name in ("a", "b"):
        cli("run", "tests.helpers.cli_flows:greet", "-i", f"name={name}")
    lines = cli("export", "--format", "jsonl").out.splitlines()
    assert [json.loads(line)["output"]["greeting"] for line in lines] == ["B!", "A!"]
    array = json.loads(cli("export", "-f", "json").out)
    assert len(array) == 2 and len(array[0]["steps"]) == 2
    rows = list(csv.DictReader(io.StringIO(cli("export", "-f", "csv").out)))
    assert len(rows) == 4 and {r["step"] for r in rows} == {"shout", "punctuate"}
    target = tmp_path / "one.jsonl"
    one = cli("export", array[1]["id"][:20], "-o", str(target))
    assert one.code == 0 and "exported 1 runs" in one.err
    assert json.loads(target.read_text())["id"] == array[1]["id"]


def test_purge_with_archive_gives_back_every_run_and_step(cli: CLI, tmp_path: Path) -> None:
    cli_flows.attempts["flaky"] = 0
    cli("run", "tests.helpers.cli_flows:flaky", "-i", "n=-1")  # failed
    for name in ("a", "b", "c"):
        cli("run", "tests.helpers.cli_flows:greet", "-i", f"name={name}")
    before = {r["id"]: r for r in map(json.loads, cli("export").out.splitlines())}

    dry = cli("purge", "--older-than", "0s", "--status", "completed", "--dry-run", "--json")
    assert dry.json() == {"runs": 3, "steps": 6, "archive": None, "dry_run": True, "kept": 0}
    assert len(cli("runs", "--json").json()["runs"]) == 4

    archive = tmp_path / "old" / "archive.jsonl.gz"
    purged = cli("purge", "--older-than", "0s", "--status", "completed", "--archive",
                 str(archive))
    assert purged.code == 0 and "purged 3 runs and 6 steps" in purged.out
    remaining = cli("runs", "--json").json()["runs"]
    assert [r["status"] for r in remaining] == ["failed"]
    with gzip.open(archive, "rt") as source:
        archived = {r["id"]: r for r in map(json.loads, source)}
    assert archived == {k: v for k, v in before.items() if v["status"] == "completed"}
    assert list(fl.read_archive(str(archive))) == list(archived.values())
    assert cli("purge", "--older-than", "30d").out.startswith("purged 0 runs")
    assert cli("purge", "--older-than", "1d", "--status", "running").code == 2


def test_db_commands(cli: CLI, db_url: str, tmp_path: Path,
                     capsys: pytest.CaptureFixture[str]) -> None:

    head = head_revision()
    if db_url.startswith("sqlite"):  # a new file: nothing has migrated it yet
        fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
        assert main(["--db", fresh, "db", "current"]) == 0
        assert f"revision none (head {head}) — needs upgrade" in capsys.readouterr().out
        assert main(["--db", fresh, "db", "check"]) == 1
        assert main(["--db", fresh, "db", "upgrade"]) == 0
        assert f"revision {head} (head {head}) — up to date" in capsys.readouterr().out
    upgraded = cli("db", "upgrade")
    assert upgraded.code == 0 and f"revision {head} (head {head}) — up to date" in upgraded.out
    assert "up to date" in cli("db", "current").out
    assert cli("db", "check").code == 0
    assert cli("db", "check", "--json").json() | {"url": None} == {
        "url": None, "current": head, "head": head, "up_to_date": True}


def test_version_and_help(cli: CLI) -> None:
    assert cli("--version").out.strip() == f"flowledger {fl.__version__}"
    assert "inspect" in cli("--help").out


def test_usage_and_cost_in_inspect_stats_and_usage(cli: CLI) -> None:
    result = cli("run", "tests.contract.test_usage:parent")
    assert result.code == 0, result.err
    run_id = result.err.split("run ", 1)[1].split()[0]
    view = cli("inspect", run_id).out
    assert "LLM usage" in view and "4 calls" in view and "(with child runs)" in view
    assert "gpt-4o-mini" in view and "$" in view
    stats = cli("stats", "--json").json()
    parent = next(w for w in stats["workflows"] if w["workflow"] == "usage_parent")
    assert parent["tokens"] == 1000 + 200 + 300 + 50 and parent["cost_usd"] > 0
    groups = cli("usage", "--by", "model", "--json").json()
    assert {g["key"]: g["calls"] for g in groups} == {
        "claude-sonnet-4-5": 1, "gpt-4o": 1, "gpt-4o-mini": 2}
    table = cli("usage", "--since", "1h").out
    assert "usage_child" in table and "usage_parent" in table
    assert cli("usage", "--by", "step").code == 2


def test_inspect_shows_context(cli: CLI) -> None:
    test_context.state["fail_second"] = False
    result = cli("run", "tests.contract.test_context:flow")
    run_id = result.err.split("run ", 1)[1].split()[0]
    view = cli("inspect", run_id).out
    assert "context" in view and "cursor" in view and '{"half": "done"}' in view
    assert cli("inspect", run_id, "--json").json()["context"]["cursor"] == 20


def test_artifacts_ls_get_and_inspect(cli: CLI, tmp_path: Path) -> None:
    result = cli("run", "tests.contract.test_artifacts:producing", "-i", "label=cli")
    assert result.code == 0, result.err
    run_id = result.err.split("run ", 1)[1].split()[0]
    listing = cli("artifacts", "ls", run_id[:24])
    assert listing.code == 0 and "raw/blob.bin" in listing.out and "1.0 KiB" in listing.out
    as_json = cli("artifacts", "ls", run_id, "--prefix", "data/", "--json").json()
    assert [a["key"] for a in as_json] == ["data/summary.json"]
    target = tmp_path / "blob.bin"
    fetched = cli("artifacts", "get", run_id, "raw/blob.bin", "-o", str(target))
    assert fetched.code == 0 and target.read_bytes() == BLOB
    assert cli("artifacts", "get", run_id, "notes.md").out == "# cli\nnon-ascii: é"
    assert cli("artifacts", "get", run_id, "missing").code == 3
    assert "artifacts" in cli("inspect", run_id).out
    assert len(cli("inspect", run_id, "--json").json()["artifacts"]) == 4


def test_quiet_prints_only_results(cli: CLI) -> None:
    loud = cli("run", "tests.helpers.cli_flows:greet", "-i", "name=q")
    quiet = cli("-q", "run", "tests.helpers.cli_flows:greet", "-i", "name=q")
    assert loud.err.startswith("run ") and quiet.err == ""
    assert json.loads(quiet.out) == json.loads(loud.out) == {"greeting": "Q!"}
    assert "more: --cursor" in cli("runs", "--limit", "1").err
    assert cli("-q", "runs", "--limit", "1").err == ""


def test_archives_accumulate_and_exports_carry_usage_and_context(cli: CLI,
                                                                 tmp_path: Path) -> None:
    archive = tmp_path / "a.jsonl.gz"
    cli("run", "tests.contract.test_usage:parent")
    assert cli("purge", "--older-than", "0s", "--archive", str(archive)).code == 0
    cli("run", "tests.helpers.cli_flows:greet", "-i", "name=z")
    assert cli("purge", "--older-than", "0s", "--archive", str(archive)).code == 0
    runs = list(fl.read_archive(str(archive)))
    assert len(runs) == 4  # parent, two children, then greet: nothing overwritten
    parent = next(r for r in runs if r["workflow"] == "usage_parent")
    assert len(parent["steps"][0]["usage"]) == 2 and parent["usage"]["calls"] == 2


def test_non_finite_numbers_print_as_strict_json(cli: CLI) -> None:
    result = cli("run", "tests.helpers.cli_flows:odd_numbers", "--json")
    assert result.code == 0, result.err

    def refuse(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    record = json.loads(result.out, parse_constant=refuse)
    assert record["output"] == {"nan": "NaN", "inf": "Infinity", "ok": 1.5}
    for line in cli("export").out.splitlines():
        json.loads(line, parse_constant=refuse)


def test_bad_inputs_are_usage_errors_before_a_run_exists(cli: CLI, tmp_path: Path) -> None:
    bad = cli("run", "tests.helpers.cli_flows:flaky", "-i", "n=x")
    assert bad.code == 2 and "input n='x' does not fit its annotation int" in bad.err
    assert cli("runs", "--json").json()["runs"] == []
    assert cli("run", "tests.helpers.cli_flows:flaky", "-i", "n=3").out.strip() == "4"
    huge = cli("runs", "--since", "99999999999d")
    assert huge.code == 2 and huge.err.count("\n") == 1 and "100 years" in huge.err
    assert cli("run", "tests/helpers/cli_flows.py").code == 2  # no :workflow part
    missing = cli("run", "tests/helpers/cli_flows.py:nope")
    assert missing.code == 3 and "has no 'nope'" in missing.err


def test_db_check_on_a_missing_file_creates_nothing(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:

    target = tmp_path / "absent" / "x.db"
    assert main(["--db", f"sqlite:///{target}", "db", "check"]) == 1
    assert "revision none" in capsys.readouterr().out
    assert not target.exists() and not target.parent.exists()


def test_inspect_and_stats_show_every_attempt_and_its_traceback(cli: CLI) -> None:
    cli_flows.attempts["wobbly"] = 0
    result = cli("run", "tests.helpers.cli_flows:wobbly_flow")
    assert result.code == 0, result.err
    run_id = result.err.split("run ", 1)[1].split()[0]
    shown = cli("inspect", run_id[:13])
    assert shown.code == 0, shown.err
    text = shown.out
    attempts = text[text.index("attempts\n"):]
    rows = [[cell.strip() for cell in line.split("│")] for line in attempts.splitlines()
            if line.strip().startswith("1 ")]
    assert [(row[2], row[3]) for row in rows] == [  # attempt, outcome
        ("1", "failed"), ("2", "failed"), ("3", "completed")]
    assert "ConnectionError: wobble number 1" in text and "wobble number 2" in text
    assert "traceback of attempt 1.1" in text and "traceback of attempt 1.2" in text
    assert 'raise ConnectionError(f"wobble number' in text
    stats = cli("stats", "--workflow", "cli_wobbly", "--json").json()
    assert [(s["attempts"], s["failed_attempts"], s["retry_rate"]) for s in stats["steps"]] \
        == [(3, 2, 1.0)]
    table = cli("stats", "--workflow", "cli_wobbly").out
    assert "failed attempts" in table and "100.0%" in table


def test_read_only_commands_do_not_create_a_missing_database(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:

    target = tmp_path / "nowhere" / "ledger.db"
    url = f"sqlite:///{target}"
    for command in (["runs"], ["inspect", "0190"], ["stats"], ["usage"], ["export"],
                    ["workers"], ["queues"], ["tokens", "ls"], ["schedule", "ls"],
                    ["purge", "--older-than", "1d"], ["cancel", "0190"]):
        assert main(["--db", url, *command]) == 3, command
        err = capsys.readouterr().err
        assert f"error: no flowledger database at {target}" in err, (command, err)
        assert not target.exists() and not target.parent.exists(), command
    # --debug names the database a command used
    assert main(["--db", url, "--debug", "run", "tests.helpers.cli_flows:greet", "-i",
                 "name=x"]) == 0
    assert f"database: sqlite:///{target}" in capsys.readouterr().err
    assert target.exists()  # run records, so it creates the database
    assert main(["--db", url, "runs"]) == 0


def test_output_reads_well_when_piped(cli: CLI) -> None:
    empty = cli("runs")
    assert empty.code == 0 and empty.out == "" and "no runs yet" in empty.err
    assert "no runs in that window" in cli("stats").err
    assert "no LLM calls recorded" in cli("usage").err
    assert "no queues yet" in cli("queues").err
    assert "no schedules" in cli("schedule", "ls").err
    assert cli("runs", "--status", "failed").err.strip() == "no runs match"
    result = cli("run", "tests.helpers.cli_flows:greet", "-i", "name=ada")
    run_id = result.err.split("run ", 1)[1].split()[0]
    for output in (cli("inspect", run_id).out, cli("runs").out, cli("stats").out):
        assert output.strip() and all(line == line.rstrip() for line in output.splitlines())
    again = cli("resume", run_id[:13])
    assert again.code == 0 and "resuming" not in again.err
    assert f"run {run_id} had already completed; its recorded output:" in again.err
    assert json.loads(again.out) == {"greeting": "ADA!"}
    assert cli("export", "-f", "xml").err.strip() == \
        "error: --format must be one of json, jsonl, csv, not 'xml'"
    assert cli("usage", "--by", "colour").code == 2


def test_counts_agree_with_their_nouns() -> None:
    one = render.usage_line(fl.UsageTotals(calls=1, input_tokens=5, models=("m",)))
    assert one.startswith("1 call, 5 in") and "1 calls" not in one
    assert render.usage_line(fl.UsageTotals(calls=2)).startswith("2 calls,")
    assert render.plural(1_000, "run") == "1,000 runs"


def test_an_unreachable_database_is_one_line_without_its_url(
        capsys: pytest.CaptureFixture[str]) -> None:


    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://secretuser@127.0.0.1:{port}/secretdb"
    assert main(["--db", url, "runs"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "secretuser" not in err and "secretdb" not in err
    assert main(["--db", url, "--debug", "runs"]) == 1
    assert f"(database postgresql+psycopg://secretuser@127.0.0.1:{port}/secretdb)" \
        in capsys.readouterr().err


LOCAL_FLOW = '''
import os, signal
from pathlib import Path
import flowledger as fl

@fl.step()
def touchy(n: int) -> int:
    if Path("crash").exists():
        os.kill(os.getpid(), signal.SIGKILL)  # dies mid-step: the run stays running
    if Path("broken").exists():
        raise RuntimeError("broken")
    return n * 2

@fl.workflow(name="local_flow")
def flow(n: int) -> int:
    return touchy(n) + 1
'''


def test_commands_import_modules_of_the_current_folder_as_run_does(tmp_path: Path) -> None:
    """A run started as `flowledger run local:flow` is resumed, forked and recovered
    from the same folder; recover says so (and exits 1) when it cannot take a run up."""

    (tmp_path / "local.py").write_text(LOCAL_FLOW)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"

    def flowledger(*args: str, cwd: Path = tmp_path) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        return subprocess.run([sys.executable, "-m", "flowledger", "--db", url, *args],
                              cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                              check=False)

    (tmp_path / "broken").touch()
    failed = flowledger("run", "local:flow", "-i", "n=4")
    assert failed.returncode == 1, failed.stderr
    run_id = failed.stderr.split("run ", 1)[1].split()[0]
    (tmp_path / "broken").unlink()
    resumed = flowledger("resume", run_id[:13])
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "9"
    forked = flowledger("fork", run_id[:13], "--from-step", "1", "-i", "n=5")
    assert forked.returncode == 0 and forked.stdout.strip() == "11", forked.stderr

    (tmp_path / "crash").touch()
    crashed = flowledger("run", "local:flow", "-i", "n=1")
    assert crashed.returncode == -9
    (tmp_path / "crash").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    refused = flowledger("recover", cwd=elsewhere)
    assert refused.returncode == 1
    assert "error: cannot recover run" in refused.stderr
    assert "No module named 'local'" in refused.stderr
    recovered = flowledger("recover", "--json")
    assert recovered.returncode == 0, recovered.stderr
    done = json.loads(recovered.stdout)
    assert [r["status"] for r in done["recovered"]] == ["completed"]
    assert done["not_recovered"] == []


def test_read_only_commands_leave_a_database_that_is_not_flowledger_s_alone(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:


    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    assert main(["--db", f"sqlite:///{other}", "runs"]) == 3
    assert "has no flowledger tables" in capsys.readouterr().err
    with sqlite3.connect(other) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["notes"]


def test_a_text_parameter_takes_its_input_as_text(cli: CLI) -> None:
    result = cli("run", "tests.helpers.cli_flows:greet", "-i", "name=5", "-i", "mark=true")
    assert result.code == 0, result.err
    assert json.loads(result.out) == {"greeting": "5true"}  # not 5 and True
    cli_flows.attempts["flaky"] = 0
    failed = cli("run", "tests.helpers.cli_flows:flaky", "-i", "n=-3")
    assert failed.code == 1 and "sometimes" in failed.err  # the step table, on stderr
    assert all(line == line.rstrip() for line in failed.err.splitlines())


def test_ui_refuses_a_taken_port_before_printing_a_login_link(cli: CLI) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("ui", "--port", str(port))
    assert result.code == 2
    assert f"127.0.0.1:{port} is already in use" in result.err
    assert "token=" not in result.out + result.err

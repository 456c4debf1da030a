"""Every command and option has help text and is documented in docs/cli.md."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from flowledger.cli import tree

DOC = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()


def _commands(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if hasattr(command, "commands"):
            yield path, command
            yield from _commands(command, path + " ")
        else:
            yield path, command


ROOT = tree.command
COMMANDS = list(_commands(ROOT))


def test_there_are_commands() -> None:
    expected = {"run", "runs", "inspect", "resume", "recover", "cancel", "fork", "diff",
                "stats", "export", "purge", "db", "db upgrade", "db current", "db check"}
    assert expected <= dict(COMMANDS).keys()


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[p for p, _ in COMMANDS])
def test_command_has_help_and_is_documented(path: str, command: Any) -> None:
    assert (command.help or "").strip(), f"flowledger {path} has no help text"
    assert f"flowledger {path}" in DOC, f"flowledger {path} is missing from docs/cli.md"
    for param in command.params:
        if param.name in ("ctx",) or param.param_type_name == "argument":
            continue
        assert (getattr(param, "help", None) or "").strip(), f"{path} {param.opts} lacks help"
        assert any(opt in DOC for opt in param.opts), f"{path} {param.opts} not in docs/cli.md"


def test_global_options_are_documented() -> None:
    for param in ROOT.params:
        assert (getattr(param, "help", None) or "").strip(), param.opts
        assert any(opt in DOC for opt in param.opts), param.opts


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[p for p, _ in COMMANDS])
def test_help_names_what_a_repeatable_option_takes(path: str, command: Any) -> None:
    """A repeatable option takes one value at a time: its help says which, not <list[str]>."""

    with click.Context(command, info_name=f"flowledger {path}") as ctx:
        text = command.get_help(ctx)
    # Options only: a variadic argument (`validate FILE...`) does take a list.
    options = text.split("Options:", 1)[-1]
    assert "list[" not in options, text

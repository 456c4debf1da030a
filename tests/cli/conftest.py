from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

import flowledger as fl
from flowledger.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


CLI = Callable[..., Result]


@pytest.fixture
def cli(db_url: str, capsys: pytest.CaptureFixture[str]) -> CLI:
    """Invoke the flowledger command in-process against the test database (created
    empty first: read-only commands do not create a missing one)."""
    fl.Ledger(db_url).close()

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        code = main(["--db", db_url, *args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke

"""What every command shares: the opened Ledger, consoles, and argument parsing."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from ..errors import ConfigurationError
from ..ledger import Ledger
from ..models import to_jsonable


class State:
    """Global options of one invocation, and the Ledger opened from them on first use."""

    def __init__(self, db: str | None, quiet: bool, debug: bool) -> None:
        self.db = db
        self.quiet = quiet
        self.debug = debug
        # Rich turns colour off by itself when output is not a terminal or NO_COLOR is set.
        # Piped output is read by people and scripts alike: do not squeeze tables to 80.
        wide = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
        self.out = Console(highlight=False, soft_wrap=False, width=wide)
        self.err = Console(stderr=True, highlight=False, width=wide)
        self._ledger: Ledger | None = None
        self.creates = False  # set by commands that record something

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.db, create=self.creates)
            if self.debug:
                self.err.print(f"database: {self._ledger.store.backend.describe()}",
                               style="dim")
        return self._ledger

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()

    def hint(self, text: str) -> None:
        if not self.quiet:
            self.err.print(text, style="dim")

    def print_json(self, value: Any) -> None:
        text = json.dumps(to_jsonable(value), default=str, ensure_ascii=False, indent=2,
                          allow_nan=False)
        sys.stdout.write(text + "\n")


def parse_inputs(pairs: list[str], json_file: str | None) -> dict[str, Any]:
    """``--input-json FILE|-`` first, then each ``--input key=value`` (JSON, else text)."""
    values: dict[str, Any] = {}
    if json_file is not None:
        try:
            text = sys.stdin.read() if json_file == "-" else Path(json_file).read_text()
            loaded = json.loads(text)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read inputs from {json_file}: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigurationError("--input-json must hold a JSON object of parameters")
        values.update(loaded)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"--input expects key=value, got {pair!r}")
        try:
            values[key.strip()] = json.loads(raw)
        except ValueError:
            values[key.strip()] = raw
    return values

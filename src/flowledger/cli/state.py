"""What every command shares: the opened Ledger, consoles, and argument parsing."""

from __future__ import annotations

import enum
import json
import os
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TextIO, TypeVar, cast

from rich.console import Console

from ..errors import ConfigurationError
from ..models import to_jsonable

if TYPE_CHECKING:
    from ..ledger import Ledger


class TrimmedLines:
    """A text stream that drops the spaces Rich pads table lines with, for output read
    by programs and pagers (a terminal shows them as nothing anyway)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.encoding = getattr(stream, "encoding", None) or "utf-8"
        self._pending = ""

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self.stream.write(line.rstrip(" ") + "\n")
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self.stream.write(self._pending)
            self._pending = ""
        self.stream.flush()

    def isatty(self) -> bool:
        return False


class State:
    """Global options of one invocation, and the Ledger opened from them on first use."""

    def __init__(self, db: str | None, quiet: bool, debug: bool) -> None:
        self.db = db
        self.quiet = quiet
        self.debug = debug
        # Rich turns colour off by itself when output is not a terminal or NO_COLOR is set.
        # Piped output is read by people and scripts alike: do not squeeze tables to 80.
        wide = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
        self.out = Console(highlight=False, soft_wrap=False, width=wide,
                           file=None if sys.stdout.isatty()
                           else cast(IO[str], TrimmedLines(sys.stdout)))
        self.err = Console(stderr=True, highlight=False, width=wide,
                           file=None if sys.stderr.isatty()
                           else cast(IO[str], TrimmedLines(sys.stderr)))
        self._ledger: Ledger | None = None
        self.creates = False  # set by commands that record something
        # Keys the Ledger redacts before recording (`worker --redact`), beside
        # FLOWLEDGER_REDACT's.
        self.redact: list[str] = []

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            # Imported on first use: `flowledger --help` and `--version` never open a store.
            from ..ledger import Ledger  # noqa: PLC0415 (start-up time)

            self._ledger = Ledger(self.db, create=self.creates, redact=self.redact or None)
            if self.debug:
                self.err.print(f"database: {self._ledger.store.backend.describe()}",
                               style="dim")
        return self._ledger

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()

    def show(self, renderable: Any, *, empty: bool = False, nothing: str = "") -> None:
        """Print a table; when it has no rows, say so (on stderr) instead of printing a
        lone header."""
        if empty:
            self.hint(nothing)
        else:
            self.out.print(renderable)

    def hint(self, text: str) -> None:
        if not self.quiet:
            self.err.print(text, style="dim")

    def print_json(self, value: Any) -> None:
        text = json.dumps(to_jsonable(value), default=str, ensure_ascii=False, indent=2,
                          allow_nan=False)
        sys.stdout.write(text + "\n")


E = TypeVar("E", bound=enum.Enum)


def choice(kind: type[E], value: str, option: str) -> E:
    """``value`` as one of an enum's members, or a usage error listing them."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(str(member.value) for member in kind)
        raise ConfigurationError(f"{option} must be one of {allowed}, not {value!r}") from None


def parse_inputs(pairs: list[str], json_file: str | None,
                 text_params: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``--input-json FILE|-`` first, then each ``--input key=value``: JSON, else text;
    always text for ``text_params`` (parameters annotated ``str``: ``-i label=5`` is
    the string ``"5"``)."""
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
        if key.strip() in text_params:
            values[key.strip()] = raw
            continue
        try:
            values[key.strip()] = json.loads(raw)
        except ValueError:
            values[key.strip()] = raw
    return values

"""Capturing what a step logs: ``logging`` records (and, opt-in, ``print`` output) emitted
while a step attempt runs are kept with that attempt and written with its outcome, in the
same transaction (no commit per log line).

Records are taken where ``logging`` creates them (its record factory, chained to any
factory installed before), not by a handler: the process's handlers, levels and output
stay exactly as configured (a handler on the root logger would, for one, silence Python's
last-resort warnings to stderr). A record is filed under the step call current in the
emitting thread or task (``runcontext``), so records of concurrent steps never mix, and
records emitted outside a step are left alone. Each
attempt keeps at most ``MAX_RECORDS`` records and ``MAX_BYTES`` of text; past that it
only counts what it dropped, so a step that logs in a loop stays cheap.

Python's own levels still apply first: a record below its logger's effective level is
never created (``logging.basicConfig(level=logging.INFO)`` lets INFO through).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

from .runcontext import active_call

MAX_RECORDS = 1_000
MAX_BYTES = 256 * 1024
PRINT_LOGGER = "print"  # the logger name ``print`` output is filed under

_formatter = logging.Formatter()


class LogBuffer:
    """The records of one step attempt, bounded; ``dropped`` counts the rest.

    Example: ``buffer.add(time.time(), "INFO", "app", "hello", None)``
    """

    __slots__ = ("_pending_print", "dropped", "records", "size")

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.size = 0
        self.dropped = 0
        self._pending_print = ""

    def add(self, at: float, level: str, logger: str, message: str,
            exception: str | None) -> None:
        if self.dropped or len(self.records) >= MAX_RECORDS:
            self.dropped += 1
            return
        size = len(message) + len(exception or "") + len(logger) + 64
        left = MAX_BYTES - self.size
        if size > left:
            if left < 1024:  # not worth a stub: the bound is reached
                self.dropped += 1
                return
            # One huge record is cut to what is left, and the bound is then reached.
            message = message[:left - 512] + " … [cut: the attempt's log bound was reached]"
            exception = None
            size = left
        self.size += size
        self.records.append({"at": round(at * 1_000_000), "level": level, "logger": logger,
                             "message": message, "exception": exception})

    def add_print(self, text: str) -> None:
        """Text written to ``sys.stdout``: one record per completed line."""
        lines = (self._pending_print + text).split("\n")
        self._pending_print = lines.pop()
        import time  # noqa: PLC0415 (only print capture needs the clock here)

        now = time.time()
        for line in lines:
            self.add(now, "INFO", PRINT_LOGGER, line, None)

    def encoded(self) -> tuple[str | None, int]:
        """(the records as a JSON array, or None when nothing was logged; dropped)."""
        if self._pending_print:
            self.add_print("\n")
        if not self.records and not self.dropped:
            return None, 0
        return json.dumps(self.records, ensure_ascii=False), self.dropped


def _capture(record: logging.LogRecord) -> None:
    call = active_call()
    buffer = None if call is None else call.logs
    if buffer is None:
        return
    if buffer.dropped or len(buffer.records) >= MAX_RECORDS:
        buffer.dropped += 1  # the cheap path of a step logging in a loop
        return
    try:
        message = record.getMessage()
        exception = (_formatter.formatException(record.exc_info)
                     if record.exc_info else record.exc_text)
    except Exception as exc:  # a bad format string must not fail the step
        message, exception = f"{record.msg!r} (unformattable: {exc})", None
    buffer.add(record.created, record.levelname, record.name, message, exception)


def _capturing_factory(make: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        _capture(record)
        return record

    factory.flowledger_capture = True  # type: ignore[attr-defined]
    return factory


class PrintTee:
    """``sys.stdout`` while print capture is on: writes go through to the real stream,
    and a copy of what a step prints is filed under its attempt."""

    def __init__(self, target: TextIO) -> None:
        self.target = target

    def write(self, text: str) -> int:
        call = active_call()
        if call is not None and call.logs is not None and call.capture_print:
            call.logs.add_print(text)
        return self.target.write(text)

    def flush(self) -> None:
        self.target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


_install_lock = threading.Lock()


def install(*, print_too: bool = False) -> None:
    """Capture step logs from now on in this process (idempotent); with ``print_too``,
    ``print`` output as well (steps of runtimes that ask for it)."""
    with _install_lock:
        current = logging.getLogRecordFactory()
        if not getattr(current, "flowledger_capture", False):
            logging.setLogRecordFactory(_capturing_factory(current))
        if print_too and not isinstance(sys.stdout, PrintTee):
            sys.stdout = PrintTee(sys.stdout)


__all__ = ["MAX_BYTES", "MAX_RECORDS", "PRINT_LOGGER", "LogBuffer", "PrintTee",
           "install"]

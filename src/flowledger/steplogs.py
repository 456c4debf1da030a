"""Reading what steps logged: ``Ledger.logs``, per step attempt. ``Ledger`` inherits it;
the capture side is ``logcapture``.

Each attempt's records are written with its outcome (a retried failure, the final
result), so the logs of an attempt appear when it ends; an attempt whose process died
left none.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .encryption import is_sealed, placeholder
from .errors import ConfigurationError
from .ledgerbase import LedgerBase
from .models import from_micros, record_to_dict
from .store import LogRow


@dataclass(frozen=True)
class LogEntry:
    """One record a step attempt logged: when, its level and logger (``print`` for
    captured print output), the message, and the formatted exception if one was logged.

    Example: ``[e.message for e in attempt.records if e.level == "ERROR"]``
    """

    at: datetime
    level: str
    logger: str
    message: str
    exception: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form. Example: ``entry.to_dict()["message"]``"""
        return record_to_dict(self)


@dataclass(frozen=True)
class AttemptLogs:
    """What one attempt of one step logged. ``dropped`` counts the records left out past
    the bound (1,000 records or 256 KiB per attempt); ``truncated`` says whether any were.

    Example: ``for a in ledger.logs(run_id): print(a.position, a.attempt, len(a.records))``
    """

    position: int
    step: str
    attempt: int
    records: tuple[LogEntry, ...]
    dropped: int = 0

    @property
    def truncated(self) -> bool:
        """True when records past the bound were left out."""
        return self.dropped > 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form. Example: ``attempt.to_dict()["truncated"]``"""
        return {"position": self.position, "step": self.step, "attempt": self.attempt,
                "records": [entry.to_dict() for entry in self.records],
                "dropped": self.dropped, "truncated": self.truncated}


class LedgerLogs(LedgerBase):
    """What steps logged; a part of ``Ledger``."""

    def logs(self, run_id: str | uuid.UUID, *, step: int | None = None) -> list[AttemptLogs]:
        """What the run's step attempts logged, step by step, attempt by attempt (only
        step ``step`` with it). Attempts that logged nothing are left out.

        Example::

            for attempt in ledger.logs(run_id, step=2):
                print(f"attempt {attempt.attempt}:", *(e.message for e in attempt.records))
        """
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)
                                 or step < 1):
            raise ConfigurationError(f"step must be a step position (1 or more), not {step!r}")
        row = self._visible(run_id)
        return [_attempt(found, row.completed_at or row.created_at)
                for found in self.store.logs_of(row.id, step)]


def _attempt(row: LogRow, when: int) -> AttemptLogs:
    if is_sealed(row.records):  # this process lacks the key: one record says so
        return AttemptLogs(row.position, row.name, row.attempt, (LogEntry(
            from_micros(when) or datetime.min, "INFO", "flowledger",
            str(placeholder(row.records))),), row.dropped)
    entries = tuple(
        LogEntry(from_micros(item["at"]) or datetime.min, item["level"], item["logger"],
                 item["message"], item.get("exception"))
        for item in json.loads(row.records))
    return AttemptLogs(row.position, row.name, row.attempt, entries, row.dropped)


__all__ = ["AttemptLogs", "LedgerLogs", "LogEntry"]

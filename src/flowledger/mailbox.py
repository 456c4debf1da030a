"""Events sent to runs: ``Ledger.send_event`` and ``Ledger.sent_events``. ``Ledger``
inherits these methods; the workflow side is ``fl.wait_for_event`` (``waits``).

An event is recorded durably whether or not its run is waiting yet, and wakes the run if
it waits for it; a wait takes the oldest event of its name, each event exactly once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import ids, validation
from .encryption import readable
from .errors import EventRejected, RunNotFound, RunNotWaitable, SerializationError
from .ledgerbase import LedgerBase
from .models import from_micros, record_to_dict
from .serialization import check_size
from .store import EventRow
from .waits import WAIT_STEP_PREFIX


@dataclass(frozen=True)
class SentEvent:
    """An event sent to a run, as ``Ledger.send_event`` and ``Ledger.sent_events`` return
    it. ``consumed_position`` is the wait that received it; ``error`` why a wait refused
    it (its payload did not fit the wait's model).

    Example: ``[e.name for e in ledger.sent_events(run_id) if e.consumed_position is None]``
    """

    id: int
    run_id: str
    name: str
    payload: Any
    sent_at: datetime
    consumed_position: int | None = None
    consumed_at: datetime | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        """True once a wait received it."""
        return self.consumed_position is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (timestamps ISO 8601). Example: ``event.to_dict()["delivered"]``"""
        return {**record_to_dict(self), "delivered": self.delivered}


class LedgerMailbox(LedgerBase):
    """Sending events to runs; a part of ``Ledger``."""

    def send_event(self, run_id: str | uuid.UUID, name: str, payload: Any = None) -> SentEvent:
        """Send event ``name`` with ``payload`` (any value the serializer stores) to a run,
        from any process. It is kept until a ``fl.wait_for_event(name)`` of the run takes
        it, and wakes the run if it waits for it now. A payload that does not fit the
        model the run waits with raises ``EventRejected`` and is not recorded; a run
        that has finished raises ``RunNotWaitable``.

        Example: ``ledger.send_event(run_id, "approve", {"approved": True, "by": "ana"})``
        """
        validation.name(name, "an event name")
        rid = self.run_uuid(run_id)
        serializer = self._runtime.serializer
        try:
            text = serializer.dumps(payload)
        except SerializationError as exc:
            raise EventRejected(f"the payload of event {name!r}: {exc}") from None
        check_size(text, self._runtime.max_payload_bytes, f"the payload of event {name!r}")
        # Checked as sent, recorded redacted: the run receives what the store holds.
        recorded = text
        if self._runtime.redactor is not None:
            recorded = self._runtime.redactor.json_text(text)[0]
        now = ids.now_us()
        status, event_id = self.store.send_event(
            rid, self.owner, name, recorded, now, WAIT_STEP_PREFIX + name,
            lambda inputs: _check_against_waits(name, text, inputs))
        if status is None:
            raise RunNotFound(str(run_id))
        if event_id is None:
            raise RunNotWaitable(f"run {rid} has finished ({status}): no wait would ever "
                                 f"receive event {name!r}")
        return SentEvent(event_id, str(rid), name, serializer.loads(recorded), from_micros(now)
                         or datetime.min)

    def sent_events(self, run_id: str | uuid.UUID) -> list[SentEvent]:
        """Every event sent to a run, oldest first: delivered, waiting for their wait, or
        refused by it.

        Example: ``pending = [e for e in ledger.sent_events(run_id) if not e.delivered]``
        """
        row = self._visible(run_id)
        serializer = self._runtime.serializer
        return [_event(found, serializer.loads) for found in self.store.events_of(row.id)]


def _event(row: EventRow, loads: Any) -> SentEvent:
    return SentEvent(row.id, str(row.run_id), row.name,
                     None if row.payload is None else loads(row.payload),
                     from_micros(row.sent_at) or datetime.min, row.consumed_position,
                     from_micros(row.consumed_at), row.error)


def _check_against_waits(name: str, text: str, inputs: Sequence[str | None]) -> None:
    """Refuse a payload that does not fit the JSON Schema of a wait the run has reached
    (the wait's pydantic model, recorded with it)."""
    schemas = []
    for recorded in inputs:
        try:
            schema = json.loads(readable(recorded or "{}", "wait")).get("schema")
        except (ValueError, AttributeError):
            continue
        if isinstance(schema, dict):
            schemas.append(schema)
    if not schemas:
        return
    import jsonschema  # noqa: PLC0415 (start-up time: only waits with a model need it)

    value = json.loads(text)
    for schema in schemas:
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(value),
                        key=lambda error: list(map(str, error.absolute_path)))
        if errors:
            problems = "; ".join(
                f"{'/'.join(map(str, error.absolute_path)) or 'the payload'}: {error.message}"
                for error in errors[:5])
            raise EventRejected(f"event {name!r} does not fit the model the run waits "
                                f"with: {problems}")


__all__ = ["LedgerMailbox", "SentEvent"]

"""Durable waits: suspending a run at a sleep or event wait, waking it, and the events
sent to runs.

No wake-up is ever lost between a waiting run and a sender: the waiter locks its run's
row before it looks for events and suspends; the sender records the event before it
touches the run's row (see ``StoreWaits``).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Insert, Select, Update, bindparam, func, insert, select, update

from ..schema import run_events, runs, steps

_RUN = bindparam("rid", type_=runs.c.id.type)

# The run held with lease token ``tok``, locked until the transaction ends.
LOCK_HELD = (select(runs.c.status).where(runs.c.id == _RUN,
                                         runs.c.lease_token == bindparam("tok"))
             .with_for_update())

# A held run lets go of its worker and lease until ``wake`` (or an event) is due.
SUSPEND = (update(runs).where(runs.c.id == _RUN, runs.c.lease_token == bindparam("tok"),
                              runs.c.status == "running")
           .values(status="waiting", wake_at=bindparam("wake"),
                   waiting_for=bindparam("event"), executor=None, lease_token=None,
                   lease_expires_at=None))

# The sleep or wait a suspended run rests at.
STEP_WAITS = (update(steps).where(steps.c.run_id == _RUN,
                                  steps.c.position == bindparam("pos"),
                                  steps.c.status == "running")
              .values(status="waiting"))


def pending_event(run_id: uuid.UUID, name: str) -> Select[Any]:
    """(id, payload) of the oldest event of this name the run has not consumed."""
    return (select(run_events.c.id, run_events.c.payload)
            .where(run_events.c.run_id == run_id, run_events.c.name == name,
                   run_events.c.consumed_position.is_(None), run_events.c.error.is_(None))
            .order_by(run_events.c.id).limit(1))


# A wait takes an event: it is consumed once, by the wait at ``position``.
CONSUME = (update(run_events).where(run_events.c.id == bindparam("event_id"),
                                    run_events.c.consumed_position.is_(None),
                                    run_events.c.error.is_(None))
           .values(consumed_position=bindparam("pos"), consumed_at=bindparam("now")))

# An event the wait refused (its payload does not fit the wait's model).
REJECT = (update(run_events).where(run_events.c.id == bindparam("event_id"),
                                   run_events.c.consumed_position.is_(None))
          .values(error=bindparam("error"), consumed_at=bindparam("now")))

# The wait's step ends with the event's payload as its output.
FINISH_WAIT_STEP = (update(steps).where(steps.c.run_id == _RUN,
                                        steps.c.position == bindparam("pos"))
                    .values(status="completed", output=bindparam("out"), error=None,
                            completed_at=bindparam("now")))

SEND = insert(run_events)


def send(run_id: uuid.UUID, name: str, payload: str | None, now: int) -> Insert:
    return SEND.values(run_id=run_id, name=name, payload=payload, sent_at=now).returning(
        run_events.c.id)


def run_state(run_id: uuid.UUID, owner: str | None) -> Select[Any]:
    """(status, waiting_for, queue) of a run the owner (None: anyone) can see, locked."""
    query = select(runs.c.status, runs.c.waiting_for, runs.c.queue).where(runs.c.id == run_id)
    if owner is not None:
        query = query.where(runs.c.owner == owner)
    return query.with_for_update()


def wake_for_event(run_id: uuid.UUID, name: str) -> Update:
    """A run waiting for event ``name`` becomes claimable at once."""
    return update(runs).where(runs.c.id == run_id, runs.c.status == "waiting",
                              runs.c.waiting_for == name).values(status="pending",
                                                                 scheduled_at=None)


def open_waits(run_id: uuid.UUID, step_name: str) -> Select[Any]:
    """The inputs of the run's unfinished steps of this name (the waits reached)."""
    return select(steps.c.input, steps.c.position).where(
        steps.c.run_id == run_id, steps.c.name == step_name,
                                       steps.c.status.in_(("running", "waiting")))


def wake_due(names: list[str], now: int) -> Update:
    """Waiting runs of these queues whose timer (or wait's timeout) is due: claimable."""
    return update(runs).where(runs.c.status == "waiting", runs.c.wake_at <= now,
                              runs.c.queue.in_(names)).values(status="pending",
                                                              scheduled_at=None)


def next_wake(names: list[str]) -> Select[Any]:
    """When the next waiting run of these queues is due."""
    return select(func.min(runs.c.wake_at)).where(runs.c.status == "waiting",
                                                  runs.c.queue.in_(names))


def events_of(run_id: uuid.UUID) -> Select[Any]:
    """Every event sent to a run, oldest first."""
    return (select(run_events.c.id, run_events.c.run_id, run_events.c.name,
                   run_events.c.payload, run_events.c.sent_at,
                   run_events.c.consumed_position, run_events.c.consumed_at,
                   run_events.c.error)
            .where(run_events.c.run_id == run_id).order_by(run_events.c.id))


def set_step_input(run_id: uuid.UUID, position: int, text: str) -> Update:
    return update(steps).where(steps.c.run_id == run_id, steps.c.position == position).values(
        input=text)


def event_identity(event_id: int) -> Select[Any]:
    """(run id, name) of an event: what its sealed payload and refusal are bound to."""
    return select(run_events.c.run_id, run_events.c.name).where(run_events.c.id == event_id)

"""Run writes: creating, finishing and cancelling runs.

A run's step totals are counted by the statement that ends it (``TOTALS``). The
statements that also run as compiled driver SQL on the raw hot path
(``INSERT_RUN_NAMED``, ``FINISH_RUN_GUARDED``) spell their constants as literals.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ScalarSelect, bindparam, func, insert, select, update

from ..schema import runs, steps
from .common import constant

ACTIVE = ("pending", "running")


def _count_steps(status: str | None = None) -> ScalarSelect[Any]:
    query = select(func.count()).select_from(steps).where(
        steps.c.run_id == bindparam("rid", type_=runs.c.id.type))
    if status is not None:
        query = query.where(steps.c.status == constant(status))
    return query.scalar_subquery()


# The run's step counts, as the values that end a run set them.
TOTALS = {"total_steps": _count_steps(), "completed_steps": _count_steps("completed"),
          "failed_steps": _count_steps("failed"), "skipped_steps": _count_steps("skipped")}
RUN_ID = bindparam("rid", type_=runs.c.id.type)
INSERT_RUN = insert(runs)
# The columns a new run sets, in the one-statement create of the raw hot path.
RUN_INSERT_COLUMNS = ("id", "workflow", "version", "entrypoint", "owner", "status",
                      "serializer", "inputs", "created_at", "started_at", "deadline_at",
                      "parent_id", "forked_from", "forked_from_position", "executor",
                      "lease_token", "queue", "priority", "scheduled_at", "idempotency_key",
                      "concurrency_key")
INSERT_RUN_NAMED = insert(runs).values({name: bindparam(name, type_=runs.c[name].type)
                                        for name in RUN_INSERT_COLUMNS})
# The status of a run still held with lease token ``tok``.
OWNED_STATUS = select(runs.c.status).where(runs.c.id == RUN_ID,
                                           runs.c.lease_token == bindparam("tok"))
# Steps still running when their run ends: failed (interrupted) with error ``why``.
INTERRUPT_STEPS = (update(steps).where(steps.c.run_id == RUN_ID, steps.c.status == "running")
                   .values(status="failed", completed_at=bindparam("now"),
                           error=bindparam("why")))
# The step totals of a run cancelled while its execution was finishing it.
UPDATE_TOTALS = update(runs).where(runs.c.id == RUN_ID).values(**TOTALS)
CANCEL_RUN = (update(runs).where(runs.c.id == RUN_ID, runs.c.status.in_(ACTIVE))
              .values(status="cancelled", completed_at=bindparam("now"), **TOTALS))
FINISH_RUN = update(runs).where(runs.c.id == RUN_ID).values(
    status=bindparam("new_status"), output=bindparam("new_output"),
    error=bindparam("new_error"), completed_at=bindparam("now"), **TOTALS)
# Finishing a run its execution still holds (the common, completed case: one statement).
FINISH_RUN_GUARDED = FINISH_RUN.where(runs.c.lease_token == bindparam("tok"),
                                      runs.c.status == constant("running"))


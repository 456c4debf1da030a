"""The queue side: claiming runs and renewing their leases.

``CLAIM_PENDING`` and ``RENEW`` run as executemany, one parameter set per run.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, bindparam, case, func, select, update

from ..schema import runs, steps
from .common import constant


def _resume_position() -> ColumnElement[Any]:
    """The first position a resumed run executes rather than replays: its first step
    not completed or skipped, else the one after its last step."""
    # Literals, not parameters: the claim runs this as an executemany.
    unfinished = select(func.min(steps.c.position)).where(
        steps.c.run_id == runs.c.id, steps.c.status != constant("completed"),
        steps.c.status != constant("skipped"))
    after_last = select(func.coalesce(func.max(steps.c.position), 0) + 1).where(
        steps.c.run_id == runs.c.id)
    return func.coalesce(unfinished.scalar_subquery(), after_last.scalar_subquery())


RESUME_POSITION = _resume_position()
# Claim a pending run (``cid``) for a worker; one that ran before resumes.
CLAIM_PENDING = (
    update(runs).where(runs.c.id == bindparam("cid"), runs.c.status == "pending")
    .values(status="running", lease_token=bindparam("tok"), executor=bindparam("worker"),
            lease_expires_at=bindparam("expires"),
            started_at=func.coalesce(runs.c.started_at, bindparam("now")),
            resumed_at=case((runs.c.started_at.is_(None), None), else_=bindparam("now")),
            resumed_from_position=case((runs.c.started_at.is_(None),
                                        runs.c.resumed_from_position),
                                       else_=RESUME_POSITION)))
# Extend the lease of a run (``cid``) still held with token ``tok``.
RENEW = (update(runs).where(runs.c.id == bindparam("cid"),
                            runs.c.lease_token == bindparam("tok"))
         .values(lease_expires_at=bindparam("expires")))

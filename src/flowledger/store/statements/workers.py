"""Workers: their registration, heartbeats, and how many runs each holds."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Delete, Insert, Select, Update, delete, func, insert, or_, select, update

from ..rows import WorkerRow
from ..schema import runs, workers

# Every registered worker, oldest first.
LIST_WORKERS = select(workers).order_by(workers.c.started_at)


def _worker_values(worker: WorkerRow) -> dict[str, Any]:
    return {"id": worker.id, "host": worker.host, "pid": worker.pid,
            "queues": json.dumps(worker.queues), "concurrency": worker.concurrency,
            "state": worker.state, "started_at": worker.started_at,
            "heartbeat_at": worker.heartbeat_at, "lease_us": worker.lease_us}


def insert_worker(worker: WorkerRow) -> Insert:
    return insert(workers).values(**_worker_values(worker))


def heartbeat(worker: WorkerRow, now: int) -> Update:
    """Record a worker's heartbeat and state (rowcount 0: its row is gone)."""
    return update(workers).where(workers.c.id == worker.id).values(
        heartbeat_at=now, state=worker.state)


def forget_workers(worker_id: str, silent_since: int) -> Delete:
    """Delete this worker's row and those of workers silent since ``silent_since``."""
    return delete(workers).where(or_(workers.c.id == worker_id,
                                     workers.c.heartbeat_at < silent_since))


def remove_worker(worker_id: str) -> Delete:
    return delete(workers).where(workers.c.id == worker_id)


def held_per_worker(worker_ids: list[str]) -> Select[Any]:
    """(worker id, queued runs it holds running) of these workers."""
    return (select(runs.c.executor, func.count())
            .where(runs.c.status == "running", runs.c.queue.is_not(None),
                   runs.c.executor.in_(worker_ids))
            .group_by(runs.c.executor))

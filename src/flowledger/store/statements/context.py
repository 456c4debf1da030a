"""Reads of run context values. Context is written by the fenced statements of
``steps.py`` (``SET_CONTEXT``) and copied into forks by ``history.py``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select

from ..schema import context


def contexts_of(run_ids: Sequence[uuid.UUID]) -> Select[Any]:
    """(run id, name, value) of several runs' context, by name."""
    return (select(context.c.run_id, context.c.name, context.c.value)
            .where(context.c.run_id.in_(list(run_ids))).order_by(context.c.name))


def context_of(run_id: uuid.UUID) -> Select[Any]:
    """(name, value, position, updated_at) of a run's context, by name."""
    return (select(context.c.name, context.c.value, context.c.position,
                   context.c.updated_at)
            .where(context.c.run_id == run_id).order_by(context.c.name))

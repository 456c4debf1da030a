"""Pieces that statements of several modules share: literals and id lists."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, Uuid, any_, bindparam, literal_column
from sqlalchemy.dialects.postgresql import ARRAY


def constant(value: str) -> ColumnElement[Any]:
    """A literal in the SQL text. For statements that also run as compiled driver SQL, or
    as an executemany, where SQLAlchemy's anonymous parameters would not be supplied."""
    return literal_column(f"'{value}'")


def among(column: ColumnElement[Any], ids: list[uuid.UUID],
          dialect: str) -> ColumnElement[bool]:
    """``column IN ids``; on PostgreSQL as ``= ANY(array)``, one parameter instead of
    thousands, which keeps batch deletes cheap to parse and plan."""
    if dialect == "postgresql":
        return column == any_(bindparam("ids", ids, type_=ARRAY(Uuid())))
    return column.in_(ids)

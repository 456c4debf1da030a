"""Pieces that statements of several modules share."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, literal_column


def constant(value: str) -> ColumnElement[Any]:
    """A literal in the SQL text. For statements that also run as compiled driver SQL, or
    as an executemany, where SQLAlchemy's anonymous parameters would not be supplied."""
    return literal_column(f"'{value}'")

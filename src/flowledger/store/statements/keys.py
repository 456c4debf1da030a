"""Owner keys, and the payload columns encryption at rest seals (rotation and status
walk them): each with its table's key columns and the columns naming its record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Select,
    Table,
    and_,
    case,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)

from ..schema import (
    artifacts,
    attempts,
    context,
    llm_cache,
    owner_keys,
    run_events,
    runs,
    schedules,
    step_logs,
    steps,
    webhook_deliveries,
)


@dataclass(frozen=True)
class SealedColumn:
    """A payload column: ``aad`` is (table, field) of its record identity and
    ``identity`` the columns that complete it; ``kind`` is ``text`` (the value is sealed
    text), ``context`` (a JSON object of sealed values) or ``delivery`` (a JSON object
    whose ``error`` is a run's sealed error)."""

    table: Table
    column: str
    aad: tuple[str, str]
    identity: tuple[str, ...]
    keys: tuple[str, ...]
    kind: str = "text"

    @property
    def name(self) -> str:
        return f"{self.table.name.removeprefix('flowledger_')}.{self.column}"


SEALED: tuple[SealedColumn, ...] = (
    SealedColumn(runs, "inputs", ("runs", "inputs"), ("id",), ("id",)),
    SealedColumn(runs, "output", ("runs", "output"), ("id",), ("id",)),
    SealedColumn(runs, "error", ("runs", "error"), ("id",), ("id",)),
    SealedColumn(steps, "input", ("steps", "input"), ("run_id", "position"),
                 ("run_id", "position")),
    SealedColumn(steps, "output", ("steps", "output"), ("run_id", "position"),
                 ("run_id", "position")),
    SealedColumn(steps, "error", ("steps", "error"), ("run_id", "position"),
                 ("run_id", "position")),
    SealedColumn(steps, "context", ("context", "value"), ("run_id",),
                 ("run_id", "position"), kind="context"),
    SealedColumn(attempts, "error", ("steps", "error"), ("run_id", "position"),
                 ("run_id", "position", "attempt")),
    SealedColumn(context, "value", ("context", "value"), ("run_id", "name"),
                 ("run_id", "name")),
    SealedColumn(step_logs, "records", ("steps", "logs"), ("run_id", "position"),
                 ("run_id", "position", "attempt")),
    SealedColumn(run_events, "payload", ("events", "payload"), ("run_id", "name"), ("id",)),
    SealedColumn(run_events, "error", ("events", "error"), ("run_id", "name"), ("id",)),
    SealedColumn(schedules, "inputs", ("schedules", "inputs"), ("name",), ("name",)),
    SealedColumn(llm_cache, "response", ("llm_cache", "response"), ("owner", "key"),
                 ("owner", "key")),
    SealedColumn(webhook_deliveries, "payload", ("runs", "error"), ("run_id",), ("id",),
                 kind="delivery"),
)


def _col(table: Table, name: str) -> Column[Any]:
    return table.c[name]


def payload_rows(spec: SealedColumn, primary: str, after: tuple[Any, ...] | None,
                 limit: int) -> Select[Any]:
    """The next rows of ``spec`` (in key order, after ``after``) whose value may need
    sealing with ``primary``: plaintext, or sealed with another key (JSON columns: every
    row holding a value). Key columns, identity columns, then the value."""
    value = _col(spec.table, spec.column)
    keys = [_col(spec.table, c) for c in spec.keys]
    wanted = [*spec.keys, *(c for c in spec.identity if c not in spec.keys)]
    query = select(*(_col(spec.table, c) for c in wanted), value).where(value.is_not(None))
    if spec.kind == "text":
        query = query.where(~value.like(f"flenc1:{_escape(primary)}:%", escape="\\"))
    if after is not None:
        query = query.where(tuple_(*keys) > tuple_(*after))
    return query.order_by(*keys).limit(limit)


def rows_of_run(spec: SealedColumn, run_id: Any) -> Select[Any]:
    """Key columns, identity columns and value of one run's sealed rows of ``spec``."""
    value = _col(spec.table, spec.column)
    return select(*(_col(spec.table, c) for c in spec.keys),
                  *(_col(spec.table, c) for c in spec.identity), value).where(
        _col(spec.table, "run_id") == run_id, value.like("%flenc1:%"))


def replace_value(spec: SealedColumn, keys: tuple[Any, ...], old: str, new: str) -> Any:
    """Set the value of one row, only if it still holds ``old`` (a writer that changed
    it meanwhile wins: its value is sealed with the primary key already)."""
    value = _col(spec.table, spec.column)
    match = and_(*(_col(spec.table, c) == k for c, k in zip(spec.keys, keys, strict=True)),
                 value == old)
    return update(spec.table).where(match).values({spec.column: new})


def key_counts(spec: SealedColumn, dialect: str) -> Select[Any]:
    """(key id, rows) of a ``text`` column's values; plaintext counts under key id ''."""
    value = _col(spec.table, spec.column)
    rest = func.substr(value, len("flenc1:") + 1)
    if dialect == "postgresql":
        sealed_key = func.split_part(rest, ":", 1)
    else:
        sealed_key = func.substr(rest, 1, func.instr(rest, ":") - 1)
    key = case((value.like("flenc1:%"), sealed_key), else_=literal(""))
    return (select(key.label("key_id"), func.count())
            .where(value.is_not(None)).group_by(key))


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# -- owner keys ---------------------------------------------------------------------------
def live_owner_key(owner: str) -> Select[Any]:
    return (select(owner_keys.c.id, owner_keys.c.secret)
            .where(owner_keys.c.owner == owner, owner_keys.c.shredded_at.is_(None),
                   owner_keys.c.secret.is_not(None))
            .order_by(owner_keys.c.created_at, owner_keys.c.id).limit(1))


def insert_owner_key(key_id: str, owner: str, secret: str, now: int) -> Any:
    return insert(owner_keys).values(id=key_id, owner=owner, secret=secret, created_at=now)


def owner_secret(key_id: str) -> Select[Any]:
    return select(owner_keys.c.secret).where(owner_keys.c.id == key_id)


def shred_owner(owner: str, now: int) -> Any:
    return (update(owner_keys)
            .where(owner_keys.c.owner == owner, owner_keys.c.shredded_at.is_(None))
            .values(secret=None, shredded_at=now))


def owner_key_rows() -> Select[Any]:
    return select(owner_keys.c.id, owner_keys.c.owner, owner_keys.c.created_at,
                  owner_keys.c.shredded_at).order_by(owner_keys.c.owner,
                                                     owner_keys.c.created_at)


def owner_of_run(run_id: Any) -> Select[Any]:
    return select(runs.c.owner).where(runs.c.id == run_id)


def artifact_contents(after: tuple[str, str] | None, limit: int) -> Select[Any]:
    """Distinct (owner, digest) pairs of artifact content, in order after ``after``."""
    query = select(artifacts.c.owner, artifacts.c.digest).distinct()
    if after is not None:
        query = query.where(tuple_(artifacts.c.owner, artifacts.c.digest) > tuple_(*after))
    return query.order_by(artifacts.c.owner, artifacts.c.digest).limit(limit)


def outside_owner_keys(owner: str) -> list[Select[Any]]:
    """Counts of ``owner``'s run and step payloads not sealed with an owner key (sealed
    with the master key itself, or plaintext): what shredding the owner cannot reach."""
    owner_key = "flenc1:%:ok\\_%"
    counts: list[Select[Any]] = []
    for column in (runs.c.inputs, runs.c.output, runs.c.error):
        counts.append(select(func.count()).where(
            runs.c.owner == owner, column.is_not(None),
            ~column.like(owner_key, escape="\\")))
    for column in (steps.c.input, steps.c.output, steps.c.error):
        counts.append(select(func.count()).select_from(
            steps.join(runs, runs.c.id == steps.c.run_id)).where(
            runs.c.owner == owner, column.is_not(None),
            ~column.like(owner_key, escape="\\")))
    return counts

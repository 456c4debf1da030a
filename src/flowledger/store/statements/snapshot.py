"""Everything reading one run returns (``Ledger.get``, the HTTP run page), in four
statements the store compiles once and runs in one read transaction (on PostgreSQL in
one pipelined round trip):

1. ``RUN``: the run's row with its tags, context, artifacts and attempt history folded
   in as JSON arrays (one indexed lookup each);
2. ``STEPS``: its steps in order, inputs and outputs cut to ``:preview`` characters (their
   full length is returned when cut, so a 1,000-step run of large payloads stays small);
3. ``FAMILY``: the revision (and what its ``stalled`` note depends on) of every
   descendant (child runs, theirs, ...);
4. ``USAGE``: the LLM calls of the run and its descendants.

``REVISIONS`` and ``STEP_MARKS`` are the light read behind an ETag: the revision, status,
lease and executor of the run and of each descendant, and the counts and latest times of
the run's steps (an aggregate over the steps' primary key range: no payload is read).
Step writes bump no revision (they are the hot path); every step write changes one of
these marks instead: a begin adds a step or an attempt, an end changes a status count.

Each statement is text SQL with ``:name`` parameters; the JSON aggregation functions are
the one place the dialects differ.
"""

from __future__ import annotations

from ..rows import RUN_COLUMNS

# JSON aggregation: SQLite's json1 and PostgreSQL's json functions, same shapes out.
_JSON = {
    "sqlite": {"agg": "json_group_array", "array": "json_array"},
    "postgresql": {"agg": "json_agg", "array": "json_build_array"},
}

_FOLDED = """
    (SELECT {agg}(tag) FROM (SELECT tag FROM flowledger_run_tags
        WHERE run_id = r.id ORDER BY tag) AS t) AS tags_json,
    (SELECT {agg}({array}(name, value)) FROM (SELECT name, value FROM flowledger_context
        WHERE run_id = r.id ORDER BY name) AS c) AS context_json,
    (SELECT {agg}({array}(key, owner, digest, size, media_type, position, created_at))
        FROM (SELECT key, owner, digest, size, media_type, position, created_at
              FROM flowledger_artifacts WHERE run_id = r.id ORDER BY key) AS a)
        AS artifacts_json,
    (SELECT {agg}({array}(position, attempt, status, started_at, completed_at, error,
                          retry_at))
        FROM (SELECT position, attempt, status, started_at, completed_at, error, retry_at
              FROM flowledger_attempts WHERE run_id = r.id
              ORDER BY position, attempt) AS h) AS attempts_json"""

_RUN = ("SELECT " + ", ".join(f"r.{name}" for name in RUN_COLUMNS) + "," + _FOLDED
        + "\nFROM flowledger_runs AS r WHERE r.id = :rid")

_CUT = """CASE WHEN length({column}) > CAST(:preview AS INTEGER)
         THEN substr({column}, 1, CAST(:preview AS INTEGER)) ELSE {column} END,
    CASE WHEN length({column}) > CAST(:preview AS INTEGER) THEN length({column}) END"""

_STEPS = ("SELECT run_id, position, name, status, attempts, "
          + _CUT.format(column="input") + ", " + _CUT.format(column="output") + """,
    error, started_at, completed_at, child_run_id, redacted
FROM flowledger_steps WHERE run_id = :rid ORDER BY position""")

_DESCENDANTS = """WITH RECURSIVE family(id) AS (
    SELECT id FROM flowledger_runs WHERE parent_id = :rid
    UNION ALL
    SELECT r.id FROM flowledger_runs AS r JOIN family AS f ON r.parent_id = f.id
)"""

_REVISION_COLUMNS = ("r.id, r.owner, r.revision, r.status, r.lease_expires_at, r.executor, "
                     "r.parent_id")

_FAMILY = (_DESCENDANTS + f"""
SELECT {_REVISION_COLUMNS} FROM flowledger_runs AS r
WHERE r.id IN (SELECT id FROM family) ORDER BY r.id""")

_USAGE = (_DESCENDANTS + """
SELECT run_id, position, model, provider, input_tokens, output_tokens,
       cached_input_tokens, reasoning_tokens, cost_usd, prices_version, recorded_at,
       cache_hit
FROM flowledger_usage
WHERE run_id = :rid OR run_id IN (SELECT id FROM family)
ORDER BY recorded_at, run_id, position""")

_REVISIONS = ("""WITH RECURSIVE family(id) AS (
    SELECT id FROM flowledger_runs WHERE id = :rid
    UNION ALL
    SELECT r.id FROM flowledger_runs AS r JOIN family AS f ON r.parent_id = f.id
)
SELECT """ + _REVISION_COLUMNS + """
FROM flowledger_runs AS r WHERE r.id IN (SELECT id FROM family)""")


_STEP_MARKS = """
SELECT count(*), coalesce(sum(attempts), 0),
       coalesce(sum(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), 0),
       coalesce(sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0),
       coalesce(sum(CASE WHEN status = 'skipped' THEN 1 ELSE 0 END), 0),
       coalesce(max(started_at), 0), coalesce(max(completed_at), 0)
FROM flowledger_steps WHERE run_id = :rid"""


def run_statements(dialect: str) -> tuple[str, str, str, str]:
    """The four statements of a run read (``:rid``, ``:preview``), as text SQL."""
    run = _RUN.format(**_JSON[dialect])
    return (_typed(run, dialect), _typed(_STEPS, dialect), _typed(_FAMILY, dialect),
            _typed(_USAGE, dialect))


def revisions_statements(dialect: str) -> tuple[str, str]:
    """The run's and its descendants' revisions, and its steps' marks (``:rid``)."""
    return _typed(_REVISIONS, dialect), _typed(_STEP_MARKS, dialect)


def _typed(sql: str, dialect: str) -> str:
    """PostgreSQL compares ids as UUIDs: the text parameter says so."""
    return sql.replace(":rid", "CAST(:rid AS UUID)") if dialect == "postgresql" else sql

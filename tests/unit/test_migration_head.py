"""Opening a store compares its revision against ``HEAD`` without loading Alembic."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from flowledger.store import HEAD
from flowledger.store.migrate import alembic_config


def test_the_known_head_is_the_newest_migration_script() -> None:
    """Opening a store compares against HEAD without loading Alembic: it must name the
    newest script."""
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD

"""Migration operations that keep a live PostgreSQL table writable while they run.

``CREATE INDEX CONCURRENTLY`` does not block writes (a plain one blocks every insert and update of
the table until it is built), but PostgreSQL refuses it inside a transaction: migrations using
these operations set ``atomic = False``. SQLite (the embedded default) gets the plain statements.
"""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db.migrations.operations import AddIndex, RemoveIndex


class _ConcurrentlyOnPostgres:
    """The concurrent operation on PostgreSQL, ``plain`` (its non-concurrent twin) elsewhere."""

    plain: Any

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            self.before_concurrent(schema_editor)
            super().database_forwards(app_label, schema_editor, from_state, to_state)  # type: ignore[misc]
        else:
            self.plain.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)  # type: ignore[misc]
        else:
            self.plain.database_backwards(self, app_label, schema_editor, from_state, to_state)

    def before_concurrent(self, schema_editor: Any) -> None:
        pass


class AddIndexConcurrentlyWherePossible(_ConcurrentlyOnPostgres, AddIndexConcurrently):
    plain = AddIndex

    def before_concurrent(self, schema_editor: Any) -> None:
        _drop_invalid_leftover(schema_editor, self.index.name)


class RemoveIndexConcurrentlyWherePossible(_ConcurrentlyOnPostgres, RemoveIndexConcurrently):
    plain = RemoveIndex


def _drop_invalid_leftover(schema_editor: Any, name: str) -> None:
    """A concurrent build that failed (a lock timeout, a deploy killed) leaves an INVALID index of
    that name behind, and the retried migration would stop on "already exists": drop it first."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_index JOIN pg_class ON pg_class.oid = pg_index.indexrelid "
            "WHERE pg_class.relname = %s AND NOT pg_index.indisvalid",
            [name],
        )
        if cursor.fetchone():
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(name)}")

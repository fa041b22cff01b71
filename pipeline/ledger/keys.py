"""Joining on any number of keys: a temporary table filled with them, where an ``IN (...)`` list
would hit SQLite's limit."""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.ledger.dialects import Db


def fill_keys(db: Db, column: str, values: Iterable[str]) -> str:
    """A temporary table ``keys_<column>`` holding just ``values``, to join ``codes`` with on
    ``column`` (any number of values, where an ``IN (...)`` list would hit SQLite's limit);
    returns its name. Outside a transaction (a read) the filling gets one of its own: without
    it every row would be its own commit, 25 µs each."""
    table = f"keys_{column}"
    own = not db.in_transaction
    if own:
        db.execute("BEGIN")  # takes no lock on the ledger: only the temporary table is written
    try:
        db.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} ({column} TEXT PRIMARY KEY)")
        db.execute(f"DELETE FROM {table}")
        if db.dialect == "postgresql":
            # One statement for every key, instead of one round trip to the server per key.
            db.execute(
                f"INSERT INTO {table} SELECT DISTINCT unnest(?::text[])",
                (list(values),),
            )
        else:
            db.executemany(
                f"INSERT INTO {table} VALUES (?) ON CONFLICT DO NOTHING", ((v,) for v in values)
            )
    except BaseException:
        if own:
            db.execute("ROLLBACK")
        raise
    if own:
        db.execute("COMMIT")
    return table

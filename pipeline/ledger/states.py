"""The states of a code in the ledger, and the time as the ledger records it."""

from __future__ import annotations

import datetime as dt

# States from which a create may be sent: the compare-and-set into ``sending`` starts from these.
SENDABLE = ("pending", "failed")
# States in which a code may exist on its door: ``created`` (Seam said so) and ``sending`` (its
# create left, the answer is unknown). Such codes count on their doors' budgets, can become
# orphans, and make a moved reservation's row wait for a person; ``MAY_EXIST_SQL`` says it in SQL.
MAY_EXIST = ("created", "sending")
MAY_EXIST_SQL = f"state IN ({', '.join(repr(state) for state in MAY_EXIST)})"


def timestamp() -> str:
    """The current time as the ledger records it (UTC, to the millisecond)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")

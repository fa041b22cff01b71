"""Ledger stage: what the pipeline did, kept in SQLite (a file, the default) or PostgreSQL (a
database several hosts share) so that no crash or rerun sends a code twice.

Takes the planned codes, each create's sending and Seam's answer, every request's exchange, each
run's summary and each status check; gives back the codes' states (what may be sent, what may
already exist on a door), the rows the results file, ``status`` and the report are built from,
and the run lock. The only code that imports sqlite3 or psycopg or writes SQL (one SQL for
both, ``dialects``): open it with ``async with await Ledger.open(...)`` (``store``), which closes
it on the way out; it does its database work in one worker thread, never on the event loop.
"""

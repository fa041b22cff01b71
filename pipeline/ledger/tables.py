"""The ledger's tables, as SQL: what a new ledger is made of (``SCHEMA``) and the columns added
since the first release (``ADDED_COLUMNS``). ``connect`` opens a ledger with them."""

from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    command TEXT NOT NULL,
    inputs TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    exit_code INTEGER,
    counts TEXT
);
CREATE TABLE IF NOT EXISTS codes (
    idempotency_tag TEXT PRIMARY KEY,
    reservation_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    door_name TEXT,
    site_name TEXT,
    user_level_name TEXT,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    max_time_rounding TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'created', 'failed')),
    reason TEXT,
    message TEXT,
    access_code_id TEXT,
    code TEXT,
    code_status TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    seam_request_id TEXT,
    first_run_id TEXT NOT NULL REFERENCES runs (run_id),
    last_run_id TEXT NOT NULL REFERENCES runs (run_id),
    created_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS codes_by_reservation ON codes (reservation_id, device_id);
CREATE INDEX IF NOT EXISTS codes_by_state ON codes (state);
CREATE TABLE IF NOT EXISTS events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    idempotency_tag TEXT,
    path TEXT,
    http_status INTEGER,
    seam_request_id TEXT,
    detail TEXT
);
-- Each code's last status change (the hand-off, the HTML report) is read from the status events
-- by tag: without this index a PostgreSQL server without statistics yet joins them to the codes
-- row by row, quadratic in a big ledger.
CREATE INDEX IF NOT EXISTS events_status_by_tag ON events (idempotency_tag, at)
    WHERE kind = 'status';
CREATE TABLE IF NOT EXISTS run_doors (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    device_id TEXT,
    door_name TEXT,
    site_name TEXT,
    matched INTEGER NOT NULL,  -- 1: device_id is a door of the workspace
    outcome TEXT NOT NULL,
    reason TEXT,
    rows INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS run_doors_by_run ON run_doors (run_id);
CREATE TABLE IF NOT EXISTS run_budgets (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    device_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    budget INTEGER NOT NULL,
    budget_source TEXT,
    reserve INTEGER NOT NULL,
    used INTEGER NOT NULL,
    after INTEGER NOT NULL,
    PRIMARY KEY (run_id, device_id)
);
-- Seam's events as they came (webhook deliveries, one row per event id): never a PIN, never
-- the raw body; ``outcome`` says what the event did to the ledger (``pipeline.ledger.events``).
CREATE TABLE IF NOT EXISTS seam_events (
    event_id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    access_code_id TEXT,
    device_id TEXT,
    occurred_at TEXT,
    created_at TEXT,
    delivery_id TEXT UNIQUE,  -- the webhook's svix-id: a retried delivery has the same one
    received_at TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS seam_events_by_code ON seam_events (access_code_id);
-- Webhooks find their code by Seam's id.
CREATE INDEX IF NOT EXISTS codes_by_access_code ON codes (access_code_id);
-- The hand-off (``pins``): each planned code's guest name, the instant up to which status
-- knows every unfinished code (its catch-up from events starts there), and what the last
-- nightly summary reported (so the next one reports only what is new).
CREATE TABLE IF NOT EXISTS guests (
    idempotency_tag TEXT PRIMARY KEY,
    guest_name TEXT
);
CREATE TABLE IF NOT EXISTS status_cursor (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    known_until TEXT NOT NULL
);
-- One of our tags found on more than one code of its door (``pipeline.ledger.duplicates``):
-- every code found carrying it, as JSON (with their PINs: never in the report), and when it
-- was first and last seen; the codes' window end, for tags the ledger has no code of.
CREATE TABLE IF NOT EXISTS duplicates (
    idempotency_tag TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    name TEXT,
    ends_at TEXT,
    codes TEXT NOT NULL,
    first_seen_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    first_run_id TEXT NOT NULL,
    last_run_id TEXT NOT NULL
);
-- The Seam workspace whose codes the ledger records (the first key's, kept): a key for another
-- workspace is refused (``pipeline.ledger.workspace``).
CREATE TABLE IF NOT EXISTS workspace (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    workspace_id TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
-- When each door's codes were last listed in full (every page, no search): a door holding an
-- open code is looked at for duplicates again once this is old (``pipeline.ledger.duplicates``);
-- none yet for the doors of a ledger an earlier version made.
CREATE TABLE IF NOT EXISTS door_looks (
    device_id TEXT PRIMARY KEY,
    looked_at TEXT NOT NULL
);
-- The rows of the latest apply run that got no code (rejected, failed), for the hand-off and
-- the report to name each such guest (``pipeline.ledger.without_code``): the reservation, its
-- door, guest and window (the code's when it was planned, else the booking's as read), why,
-- and its line in the input. Each apply run that records its summary replaces them.
CREATE TABLE IF NOT EXISTS without_code (
    run_id TEXT NOT NULL,
    reservation_id TEXT,
    device_id TEXT,
    door_name TEXT,
    site_name TEXT,
    guest_name TEXT,
    check_in TEXT,
    check_out TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    message TEXT,
    idempotency_tag TEXT,
    also_for TEXT,
    source_file TEXT,
    source_line INTEGER,
    recorded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS known_trouble (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
"""

# Columns added after the first release, per table: ledgers made before them get them on open,
# with the statement (if any) that fills them in for the rows already there.
ADDED_COLUMNS: dict[str, dict[str, tuple[str, str | None]]] = {
    "codes": {
        # JSON list of Seam's errors on the code, as last seen; and of its warnings
        "code_errors": ("TEXT", None),
        "code_warnings": ("TEXT", None),
        "needs_attention": ("TEXT", None),  # why a person should look at it (null: nothing)
        "status_checked_at": ("TEXT", None),  # when Seam was last asked
        "replaces_tag": ("TEXT", None),  # a reissued code: the tag of the code it replaces
        # The first apply run whose inputs no longer had the code's reservation (null: it had)
        "orphaned_run_id": ("TEXT", None),
        # The first apply run whose input gave the code's reservation other codes only (the
        # stay moved: another door or window); null while the input still has it
        "superseded_run_id": ("TEXT", None),
        # When the last create for it was sent (wall clock, UTC): its outcome settles from there
        "sent_at": ("TEXT", None),
        # When the Seam event that last moved the code's status happened (Seam's clock): no
        # older event moves it again (``pipeline.ledger.events``)
        "status_event_at": ("TEXT", None),
        # A code made because [doors.also] asked for it: the doors of the stay it serves
        # (null: a code for a row's own door)
        "also_for": ("TEXT", None),
        # The first apply run whose config no longer asked for this [doors.also] code while
        # its reservation was still in the input (null: still asked for, or never was)
        "also_dropped_run_id": ("TEXT", None),
        # When a look after an unknown outcome last found no code, before the create was sent
        # again: the earlier create may still be carried out late, so the code's door is looked
        # at for a duplicate while its window is open (``pipeline.ledger.duplicates``)
        "not_found_at": ("TEXT", None),
        # Another PIN than ``code`` that a Seam event gave the code (never swapped in: the code
        # needs attention until ``status`` asks Seam); null once status has
        "reported_code": ("TEXT", None),
    },
    "run_doors": {
        # Rows kept before it: a row that named a device_id counted as a door's, as the
        # report showed them then.
        "matched": (
            "INTEGER NOT NULL DEFAULT 1",
            "UPDATE run_doors SET matched = CASE WHEN device_id IS NULL THEN 0 ELSE 1 END",
        ),
    },
}

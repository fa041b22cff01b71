"""A big ledger without a sandbox: what ``runs`` nightly apply runs over ``doors`` doors would
leave, written through the ledger's own operations (``register``, ``record_apply``,
``finish_run``) plus the columns Seam's answers and ``status`` fill in. For the HTML report's
size test and benchmark, where making 100,000 codes through the sandbox would take minutes.

Every code gets a window around ``now`` (from ten days before to fifty after, in one of four
zones), a guest, and either a PIN and ``set`` (most) or no PIN yet and ``unset``; a few need
attention, a few failed, a few are orphaned (their reservation left the last export), and
some doors' rows were rejected (budget, unreadable rows). PINs are eight digits, so that a
test can look for them in a page without meeting a date or a count.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.ledger.dialects import Db
from pipeline.ledger.store import Ledger

OFFSETS = ("-08:00", "-05:00", "+01:00", "+10:00")


def _door(index: int) -> tuple[str, str, str]:
    return f"door-{index:05d}", f"Door {index:05d}", f"Site {index // 50:03d}"


def _stay(index: int, door: int, now: dt.datetime, rng: random.Random) -> dict[str, Any]:
    device_id, door_name, site_name = _door(door)
    offset = OFFSETS[door % len(OFFSETS)]
    check_in = now.date() + dt.timedelta(days=rng.randrange(-10, 50))
    check_out = check_in + dt.timedelta(days=rng.randrange(1, 6))
    tag = f"opl-{index:020d}"
    reservation = f"R{index:06d}"
    return {
        "idempotency_tag": tag,
        "reservation_id": reservation,
        "device_id": device_id,
        "door_name": door_name,
        "site_name": site_name,
        "user_level_name": "Guest",
        "starts_at": f"{check_in}T15:00:00{offset}",
        "ends_at": f"{check_out}T11:00:00{offset}",
        "max_time_rounding": "1h",
        "name": f"{reservation} Guest {index} [{tag}]",
    }


async def fill_ledger(
    location: Path, *, codes: int, doors: int, now: dt.datetime, runs: int = 7, seed: int = 5
) -> set[str]:
    """Write the ledger at ``location`` (a new SQLite file); returns every PIN it holds."""
    rng = random.Random(seed)
    stays = [_stay(index, index % doors, now, rng) for index in range(codes)]
    budget = -(-codes * 5 // (doors * 4))  # a quarter more than the codes per door
    cancelled = {stay["reservation_id"] for stay in stays if rng.random() < 0.005}
    pins: set[str] = set()
    ledger = await Ledger.open(location)
    try:
        used: Counter[str] = Counter()
        for night in range(runs):
            batch = stays[night * codes // runs : (night + 1) * codes // runs]
            run_id = await ledger.start_run("apply", ["export.csv"])
            await ledger.register(run_id, batch)
            answers = [_answer(stay, now, rng) for stay in batch]
            pins.update(answer["code"] for answer in answers if answer["code"])
            await ledger.write(lambda db, a=answers, r=run_id: _record_answers(db, r, a))
            made = Counter(stay["device_id"] for stay in batch)
            before = used.copy()
            used.update(made)
            rejected = {stay["device_id"]: 2 for stay in batch[:: max(1, len(batch) // 40)]}
            summary = [
                (device, *_door(int(device[5:]))[1:], True, "created", None, count)
                for device, count in made.items()
            ] + [
                (device, *_door(int(device[5:]))[1:], True, "rejected", reason, count)
                for device, count in rejected.items()
                for reason in ("budget_exhausted", "invalid_row")
            ]
            budgets = [
                (device, "lifetime", budget, "per_door", 0, before[device], used[device])
                for device in made
            ]
            present = [s["reservation_id"] for s in stays[: (night + 1) * codes // runs]]
            last = night == runs - 1
            await ledger.record_apply(
                run_id,
                summary,
                budgets,
                [reservation for reservation in present if not (last and reservation in cancelled)],
                now=now,
            )
            counts = {"created": len(batch), "rejected": 2 * sum(rejected.values())}
            await ledger.finish_run(run_id, 1, counts)
    finally:
        await ledger.close()
    return pins


def _answer(stay: dict[str, Any], now: dt.datetime, rng: random.Random) -> dict[str, Any]:
    """What Seam and ``status`` would have said of this stay's code."""
    draw = rng.random()
    answer: dict[str, Any] = {
        "idempotency_tag": stay["idempotency_tag"],
        "state": "created",
        "access_code_id": f"ac-{stay['idempotency_tag'][4:]}",
        "code": f"{rng.randrange(10**7, 10**8)}",
        "code_status": "set",
        "needs_attention": None,
        "reason": "created",
    }
    if draw < 0.003:
        answer |= {"state": "failed", "access_code_id": None, "code": None, "code_status": None}
        answer["reason"] = "door_not_looked_at"
    elif draw < 0.008:
        answer |= {"code": None, "code_status": "unset"}
        answer["needs_attention"] = "not_set_in_time: not set on the lock 2 h after its start"
    elif draw < 0.3:
        answer |= {"code": None, "code_status": "unset"}
    return answer


def _record_answers(db: Db, run_id: str, answers: list[dict[str, Any]]) -> None:
    """Seam's answers and the run's requests to Seam (one create each, one in ten retried)."""
    at = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    db.executemany(
        "UPDATE codes SET state = ?, access_code_id = ?, code = ?, code_status = ?,"
        " needs_attention = ?, reason = ?, created_at = ?, updated_at = ?"
        " WHERE idempotency_tag = ?",
        [
            (
                a["state"],
                a["access_code_id"],
                a["code"],
                a["code_status"],
                a["needs_attention"],
                a["reason"],
                at,
                at,
                a["idempotency_tag"],
            )
            for a in answers
        ],
    )
    requests = len(answers) + len(answers) // 10
    db.executemany(
        "INSERT INTO events (run_id, at, kind, path, http_status) VALUES (?, ?, 'request', ?, ?)",
        [(run_id, at, "/access_codes/create", 200)] * requests,
    )

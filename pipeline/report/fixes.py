"""What a person does about each reason a guest may be left without a working code, or with one
too many: one line per reason code (``plan.reasons``, Seam's error types, ``status``'s and the
webhooks' attention reasons, a code that is orphaned or superseded). Every fix text the tool
shows (pins' ``why_not_ready``, the report's ``needs_a_person``, the nightly summary) is here,
once; the duplicates' is ``apply.duplicates.FIX``, which every place that says a duplicate
shares.

A fix may say until when an old code keeps opening its door (``{until}``): ``fix_for`` fills
it in.
"""

from __future__ import annotations

from pipeline.apply.duplicates import FIX as DUPLICATE_FIX
from pipeline.common import reasons
from pipeline.ledger.events import PIN_CHANGED

RERUN = "rerun apply"
FIX_THE_ROW = "fix the booking in the property system or the export, then rerun apply"
# Said of a code that is no longer the guest's (orphaned, superseded) but still opens its door.
STILL_VALID = "it stays valid until {until} (codes can't be deleted)"

# Problems of a code rather than of a row (``report.people``).
ORPHANED = "orphaned"
SUPERSEDED = "superseded"

FIXES = {
    # Codes that need attention (``status``, the webhooks).
    "seam_error": "read Seam's error on the code; check the door, and give the guest another"
    " way in if the lock can't take the code",
    "seam_warning": "read Seam's warning on the code and check the door",
    "not_set_in_time": "the stay has begun and the lock hasn't taken the code: check the door"
    " (battery, reach) and make sure the guest can get in",
    "missing_on_seam": "Seam no longer lists the code: check the door in Seam; the guest may"
    " need another code",
    "removed_from_device": "Seam removed the code from the lock before its end: check the door"
    " in Seam and give the guest another way in",
    PIN_CHANGED: "run status, then send the guest the PIN the pins file lists (Seam's own)",
    # Codes that are no longer the guest's but still open the door.
    ORPHANED: "tell the guest their code no longer applies (the booking left the export, was"
    f" cancelled, or moved to another door); {STILL_VALID}",
    SUPERSEDED: "the stay changed: tell the guest to use their new code (the pins file lists"
    f" it) and that the old one no longer applies; {STILL_VALID}",
    reasons.DUPLICATE_ON_DOOR: DUPLICATE_FIX,
    # Rejected rows (``plan.reasons``).
    reasons.INVALID_ROW: FIX_THE_ROW,
    reasons.DUPLICATE_RESERVATION_CONFLICT: "keep one row per reservation and door in the"
    " export (the copies differ), then rerun apply",
    reasons.BUDGET_EXHAUSTED: "the door has no room left for codes (they can't be deleted):"
    " raise its budget if the lock takes more, or give the guest another way in",
    reasons.CHANGED_AFTER_CREATION: "the stay changed after its code was made: set [changes]"
    " reissue_changed = true in the config (or rerun apply with --reissue-changed) to make the"
    " new code, then send it to the guest",
    reasons.UNKNOWN_DEVICE: "name the door as Seam does in the export, or add a [doors.aliases]"
    " entry",
    reasons.AMBIGUOUS_DEVICE: "give the door's device_id, or a [doors.aliases] entry for the name",
    reasons.OFFLINE_CODES_NOT_SUPPORTED: "the door can't take offline codes: give the guest"
    " another way in",
    reasons.UNKNOWN_TIME_ZONE: "set the door's time zone in Seam, or in the config",
    reasons.UNKNOWN_USER_LEVEL: "name one of the door's user levels (`doors` lists them)",
    reasons.MASTER_USER_LEVEL_UNSUPPORTED: "Seam can't make codes of a master level: name a"
    " guest level of the door",
    reasons.ONE_TIME_USE_UNSUPPORTED: "Seam can't make one-time codes: name a guest level of the"
    " door",
    reasons.NO_MATCHING_USER_LEVEL: "fix the booking's times, or add a user level that fits"
    " them on the door",
    reasons.AMBIGUOUS_USER_LEVEL: "name the user level in the booking, or configure a default",
    reasons.USER_LEVEL_TIMES_MISMATCH: "make the booking's times those of its user level",
    reasons.NONEXISTENT_LOCAL_TIME: "the clocks skip that time on the lock: move the booking's"
    " time out of the hour the clocks go forward",
    reasons.INVALID_WINDOW: "make the check-out later than the check-in, then rerun apply",
    reasons.DURATION_EXCEEDS_31_DAYS: "split the stay: a lock takes windows of 31 days at most",
    reasons.BIWEEKLY_NEEDS_14_DAYS: "a biweekly level needs a 14-day stay: name another level",
    reasons.DAILY_BOUND_TIMES_DIFFER: "give the 24-hour level the same check-in and check-out time",
    reasons.IN_THE_PAST: "nothing, unless the dates are wrong",
    # Failed creates (``apply``).
    reasons.OUTCOME_UNKNOWN: "the create's answer was lost: rerun apply, which looks for the code"
    " on the door before sending again",
    reasons.NOT_ATTEMPTED: "the run stopped before this code: " + RERUN,
    reasons.DOOR_NOT_LOOKED_AT: "the door couldn't be looked at: " + RERUN,
    # Creates left to send again (a code ``pending`` with the reason it went back).
    reasons.CONNECT_FAILED: "Seam couldn't be reached from this machine (nothing was sent):"
    " check the network and SEAM_ENDPOINT, then " + RERUN,
    reasons.RATE_LIMITED: "Seam asked to slow down before this code was made (the run paces"
    " itself within Seam's limits): " + RERUN,
    reasons.NOT_FOUND: "the code wasn't on its door after its answer was lost, so it is sent"
    " again: " + RERUN,
}


def fix_for(reason: str | None, *, outcome: str | None = None, until: str | None = None) -> str:
    """The fix for ``reason`` (a reason code, or a text that starts with one and a colon); a
    failed create with a reason of Seam's own gets the fix for a refused create. ``until``:
    when an old code stops opening its door (for ``orphaned`` and ``superseded``)."""
    code = (reason or "").split(":", 1)[0].strip()
    if code in FIXES:
        return FIXES[code].replace("{until}", until or "its window ends")
    if outcome == "failed":
        return "Seam refused the create: read its reason, fix the door or the booking, " + RERUN
    return FIX_THE_ROW

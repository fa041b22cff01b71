"""What a person does about each reason a guest may be left without a working code: one line
per reason code (``plan.reasons``, Seam's error types, ``status``'s attention reasons)."""

from __future__ import annotations

from pipeline.plan import reasons

RERUN = "rerun apply"
FIX_THE_ROW = "fix the booking in the property system or the export, then rerun apply"

FIXES = {
    # Codes that need attention (``status``).
    "seam_error": "read Seam's error on the code; check the door, and give the guest another"
    " way in if the lock can't take the code",
    "seam_warning": "read Seam's warning on the code and check the door",
    "not_set_in_time": "the stay has begun and the lock hasn't taken the code: check the door"
    " (battery, reach) and make sure the guest can get in",
    "missing_on_seam": "Seam no longer lists the code: check the door in Seam; the guest may"
    " need another code",
    # Orphaned codes.
    "orphaned": "the booking left the export but its code opens the door until its end (codes"
    " can't be deleted): confirm the cancellation, tell the guest if the stay moved, watch the"
    " door",
    # Rejected rows (``plan.reasons``).
    reasons.BUDGET_EXHAUSTED: "the door has no room left for codes (they can't be deleted):"
    " raise its budget if the lock takes more, or give the guest another way in",
    reasons.CHANGED_AFTER_CREATION: "the stay moved after its code was made: rerun apply with"
    " --reissue-changed and send the guest the new code",
    reasons.UNKNOWN_DEVICE: "name the door as Seam does in the export, or add a [doors.aliases]"
    " entry",
    reasons.AMBIGUOUS_DEVICE: "give the door's device_id, or a [doors.aliases] entry for the name",
    reasons.OFFLINE_CODES_NOT_SUPPORTED: "the door can't take offline codes: give the guest"
    " another way in",
    reasons.UNKNOWN_TIME_ZONE: "set the door's time zone in Seam, or in the config",
    reasons.UNKNOWN_USER_LEVEL: "name one of the door's user levels (`doors` lists them)",
    reasons.NO_MATCHING_USER_LEVEL: "fix the booking's times, or add a user level that fits"
    " them on the door",
    reasons.AMBIGUOUS_USER_LEVEL: "name the user level in the booking, or configure a default",
    reasons.USER_LEVEL_TIMES_MISMATCH: "make the booking's times those of its user level",
    reasons.DURATION_EXCEEDS_31_DAYS: "split the stay: a lock takes windows of 31 days at most",
    reasons.IN_THE_PAST: "nothing, unless the dates are wrong",
    # Failed creates (``apply``).
    reasons.OUTCOME_UNKNOWN: "the create's answer was lost: rerun apply, which looks for the code"
    " on the door before sending again",
    reasons.NOT_ATTEMPTED: "the run stopped before this code: " + RERUN,
    reasons.DOOR_NOT_LOOKED_AT: "the door couldn't be looked at: " + RERUN,
}


def fix_for(reason: str | None, *, outcome: str | None = None) -> str:
    """The fix for ``reason`` (a reason code, or a text that starts with one and a colon); a
    failed create with a reason of Seam's own gets the fix for a refused create."""
    code = (reason or "").split(":", 1)[0].strip()
    if code in FIXES:
        return FIXES[code]
    if outcome == "failed":
        return "Seam refused the create: read its reason, fix the door or the booking, " + RERUN
    return FIX_THE_ROW

"""Every fix text, in one module: each reason a guest can be left without a working code for,
or with one too many, has a fix of its own, not the generic one."""

from __future__ import annotations

import pytest

from pipeline.common import reasons
from pipeline.ledger.events import PIN_CHANGED
from pipeline.report.fixes import FIXES, ORPHANED, SUPERSEDED, fix_for

# Reason codes of rows that went as they should, or were set aside on purpose: no one acts.
NO_PERSON = {
    reasons.BLANK_ROW,
    reasons.EXCLUDED,
    reasons.DUPLICATE_RESERVATION,
    reasons.FOUND_ON_DOOR,
    reasons.ADOPTED,
    reasons.CREATED,
}
# Why status or a webhook flags a code (``report.status``, ``webhooks.events``).
ATTENTION = (
    "seam_error",
    "seam_warning",
    "not_set_in_time",
    "missing_on_seam",
    "removed_from_device",
    PIN_CHANGED,
)
REASON_CODES = sorted(
    value
    for name, value in vars(reasons).items()
    if name.isupper() and isinstance(value, str) and value not in NO_PERSON
)


@pytest.mark.parametrize("reason", [*REASON_CODES, *ATTENTION, ORPHANED, SUPERSEDED])
def test_each_reason_a_person_acts_on_has_its_own_fix(reason):
    """The reason has its own text in FIXES, and fix_for gives it for the reason alone or
    followed by what Seam or status said."""
    assert reason in FIXES
    own = FIXES[reason].replace("{until}", "2027-03-04T11:00:00+01:00")
    assert fix_for(reason, until="2027-03-04T11:00:00+01:00") == own
    assert fix_for(f"{reason}: as Seam said it", until="2027-03-04T11:00:00+01:00") == own

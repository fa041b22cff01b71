"""The idempotency tag: how a code is found on its door (Seam has no idempotency key).

It is in every code's name, and it never changes for one reservation, door and window: plan
gives it (``plan.naming``), catalog and budget find it on the door's codes.
"""

from __future__ import annotations

TAG_PREFIX = "opl-"
# A tag as it appears inside a code's name (the prefix and 20 decimal digits).
TAG_PATTERN = rf"{TAG_PREFIX}\d{{20}}"

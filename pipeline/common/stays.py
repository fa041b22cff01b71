"""The years a stay's dates may fall in: read refuses a date outside them in a file's cells,
plan in a stay's text."""

from __future__ import annotations

# The zone rules Polars carries stop applying daylight saving time in 2100, and no stay is
# booked that far ahead (or before 2000): dates outside these years are refused.
FIRST_YEAR, LAST_YEAR = 2000, 2099

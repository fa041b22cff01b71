"""The input's column schema: the columns a reservation row is read into, the split date and
time columns some property systems export instead, and what makes two rows the same
reservation. read reads into them, plan and apply carry them on."""

from __future__ import annotations

CANONICAL_COLUMNS = (
    "reservation_id",
    "device_id",
    "door_name",
    "site_name",
    "check_in",
    "check_out",
    "guest_name",
    "user_level",
)

# Split columns: a stay's date and its time of day, as many property systems export them; the
# read stage combines each pair into check_in / check_out.
SPLIT_COLUMNS = ("check_in_date", "check_in_time", "check_out_date", "check_out_time")

# What makes two rows with the same reservation_id the same reservation: all but the id.
CONTENT_COLUMNS = CANONICAL_COLUMNS[1:]

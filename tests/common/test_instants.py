"""Instants as the ledger and the options write them: an offset or Z, never the machine's zone."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.common.instants import as_instant, parse_instant

PLUS_ONE = dt.timezone(dt.timedelta(hours=1))


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2027-03-12T15:00:00Z", dt.datetime(2027, 3, 12, 15, tzinfo=dt.UTC)),
        ("2027-03-12T15:00:00+00:00", dt.datetime(2027, 3, 12, 15, tzinfo=dt.UTC)),
        (" 2027-03-12T16:00:00+01:00 ", dt.datetime(2027, 3, 12, 16, tzinfo=PLUS_ONE)),
        ("2027-03-12T15:00:00.123Z", dt.datetime(2027, 3, 12, 15, 0, 0, 123000, tzinfo=dt.UTC)),
    ],
)
def test_an_instant_with_its_offset_is_read_as_that_instant(text, instant):
    """Z and an offset both give an aware datetime at that instant (the offset kept)."""
    assert parse_instant(text) == instant
    assert parse_instant(text).utcoffset() == instant.utcoffset()
    assert as_instant(text) == instant


@pytest.mark.parametrize("text", ["2027-03-12T15:00:00", "2027-03-12", "soon", ""])
def test_what_is_not_an_instant_is_refused_or_none(text):
    """A time without its offset, a date, words: parse_instant raises, as_instant gives None."""
    with pytest.raises(ValueError, match=r"isoformat|no UTC offset"):
        parse_instant(text)
    assert as_instant(text) is None


@pytest.mark.parametrize("value", [None, 1_700_000_000, b"2027-03-12T15:00:00Z"])
def test_as_instant_of_what_is_not_text_is_none(value):
    """None, a number or bytes (a JSON body's other types) are no instant."""
    assert as_instant(value) is None

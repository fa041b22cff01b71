"""The receiver's trouble lines: one a minute per kind, the times in between counted."""

from __future__ import annotations

import logging

from pipeline.webhooks import guard


def test_trouble_is_said_once_a_minute_with_the_times_between(monkeypatch, caplog):
    """Five refusals within a minute are one line; the next one after the minute is a second
    line counting the four it didn't say, and itself."""
    clock = [1000.0]
    monkeypatch.setattr(guard.time, "monotonic", lambda: clock[0])
    said = guard.OncePerMinute("refused a connection")
    with caplog.at_level(logging.WARNING, logger="pipeline.webhooks.guard"):
        for _ in range(5):
            said.note()
            clock[0] += 1
        clock[0] += guard.SAY_EVERY
        said.note()
    lines = [(r.getMessage(), r.__dict__["times"]) for r in caplog.records]
    assert lines == [("refused a connection", 1), ("refused a connection", 5)]

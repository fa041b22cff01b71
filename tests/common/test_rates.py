"""One rate type: the --door-rate text read and written back, and what the sandbox unpacks."""

from __future__ import annotations

import pytest

from pipeline.common.rates import SEAM_DOOR_RATE, Rate, rate_text


@pytest.mark.parametrize("text", ["10/60s", "1/0.5s", "3/7200s", "off"])
def test_a_rate_s_text_reads_back_as_the_same_rate(text):
    """rate_text writes what Rate.parse reads: the options' defaults survive the parser."""
    rate = Rate.parse(text)
    assert rate_text(rate) == text
    assert Rate.parse(rate_text(rate)) == rate


def test_seam_s_limit_is_ten_a_minute_and_unpacks_as_count_and_period():
    """The default door rate is Seam's documented 10 creates per 60 s, usable as two numbers."""
    count, period = SEAM_DOOR_RATE
    assert (count, period) == (10, 60.0)
    assert rate_text(SEAM_DOOR_RATE) == "10/60s"

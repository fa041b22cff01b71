"""Hypothesis settings for the property tests, by profile: ``make test`` runs every example a
test asks for; ``make test-fast`` (``--hypothesis-profile=fast``) runs at most ``FAST_EXAMPLES``
of each, for the inner loop. No deadline: one example may plan a whole table in Polars."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

FAST_EXAMPLES = 15
settings.register_profile("fast", max_examples=FAST_EXAMPLES)


def property_settings(examples: int) -> settings:
    """``examples`` examples under the default profile, at most ``FAST_EXAMPLES`` under
    ``fast``."""
    if settings.get_current_profile_name() == "fast":
        examples = min(examples, FAST_EXAMPLES)
    return settings(
        max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )

"""Test-suite settings shared by every test module."""

from hypothesis import settings

# Hypothesis fails an example that runs longer than its deadline (200 ms by default): a
# wall-clock assertion, which a loaded machine trips without anything being wrong. The suite
# asserts results, never times, so no example has a deadline.
settings.register_profile("fewmul", deadline=None)
settings.load_profile("fewmul")

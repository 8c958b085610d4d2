"""Suite-wide settings: property tests have no per-example deadline (the suite runs on shared, noisy
machines, where a timing deadline only makes tests flaky; speed is measured by scripts/bench)."""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("sesamd", deadline=None)
settings.load_profile("sesamd")

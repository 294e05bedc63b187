"""How hard the tests try: TEST_PROFILE=fast (the default, quick feedback) or deep (the full run).

`make test` and `make test-deep` set deep. The fast profile runs every test that is not marked
`deep` and gives property tests fewer examples (`examples`); the deep profile runs the marked
ones too, each property test with its full number of examples.
"""

from __future__ import annotations

import os

PROFILES = ("fast", "deep")
PROFILE = os.environ.get("TEST_PROFILE", "fast").strip().lower() or "fast"
if PROFILE not in PROFILES:
    raise ValueError(f"TEST_PROFILE={PROFILE!r}: expected one of {', '.join(PROFILES)}")
DEEP = PROFILE == "deep"

FAST_EXAMPLES = 25  # enough to hit every branch of the strategies once or twice


def examples(deep: int) -> int:
    """Hypothesis max_examples: `deep` in the deep profile, at most FAST_EXAMPLES in the fast one."""
    return deep if DEEP else min(deep, FAST_EXAMPLES)

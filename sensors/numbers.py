"""Numbers from a registry file, which is hostile input like any other."""

from __future__ import annotations

import math
from typing import Any


def finite_number(value: Any) -> float | None:
    """A finite float from an int or float (not a bool); None for anything else, an integer too large
    for a float included (YAML reads 1e400 as inf and a 400-digit integer as an int)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        f = float(value)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None

"""JSON-safe conversion shared by the result files and the CLI (no heavy imports: the CLI loads it
at start-up)."""

from __future__ import annotations

import math


def jsonable(x):
    """Convert numpy/JAX scalars and arrays (and inf/nan) into JSON-safe Python values."""
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if hasattr(x, "tolist"):
        return jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return "inf" if x > 0 else ("-inf" if x < 0 else "nan")
    return x

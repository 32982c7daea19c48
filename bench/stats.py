"""Summaries of timing samples: median and p95 (nearest rank), in seconds or milliseconds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: a value that was really measured, never an interpolation."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summarize(samples: Sequence[float], *, unit: str = "s", digits: int = 4) -> dict:
    """n, median, p95, min and max of `samples` (given in seconds), in `unit` (s or ms)."""
    if not samples:
        return {"n": 0}
    scale = 1000.0 if unit == "ms" else 1.0
    return {
        "n": len(samples),
        f"median_{unit}": round(statistics.median(samples) * scale, digits),
        f"p95_{unit}": round(percentile(samples, 0.95) * scale, digits),
        f"min_{unit}": round(min(samples) * scale, digits),
        f"max_{unit}": round(max(samples) * scale, digits),
    }

"""Timing helpers shared by the benchmark scripts (imported from their own folder)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def timed(func: Callable[[], Any], repeat: int, number: int = 1) -> float:
    """Median seconds per call over ``repeat`` rounds of ``number`` calls."""
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            func()
        rounds.append((time.perf_counter() - start) / number)
    return statistics.median(rounds)

"""Distances between a reference and a current histogram, from bin counts alone."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["js_distance", "ks_binned", "psi", "shares"]

# An empty bin's share is taken as this before the logarithm, as is usual for PSI: a bin
# that is empty on one side contributes a large but finite term.
EPSILON = 1e-4


def shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    if total <= 0:
        return np.zeros(counts.shape, dtype=np.float64)
    return np.asarray(counts, dtype=np.float64) / float(total)


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index: sum of (q - p) ln(q / p) over the bins."""
    p = np.clip(shares(reference), EPSILON, None)
    q = np.clip(shares(current), EPSILON, None)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, so in [0, 1]) between the two histograms."""
    p = shares(reference)
    q = shares(current)
    m = (p + q) / 2.0

    def kl(a: np.ndarray) -> float:
        present = a > 0
        return float(np.sum(a[present] * np.log2(a[present] / m[present])))

    divergence = max((kl(p) + kl(q)) / 2.0, 0.0)
    return math.sqrt(divergence)


def ks_binned(reference: np.ndarray, current: np.ndarray) -> float:
    """Kolmogorov-Smirnov statistic of the binned CDFs: the largest gap at a bin edge."""
    gap = np.abs(np.cumsum(shares(reference)) - np.cumsum(shares(current)))
    return float(gap.max()) if gap.size else 0.0

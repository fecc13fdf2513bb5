"""The golden-output comparison, one rule for both replays.

The scikit-learn replay (:func:`modelkeep._golden.replay_golden`) and the ONNX replay
(:func:`modelkeep.onnx.runtime.replay_golden`) differ in how they run the model and in the
tolerance they allow; what counts as a mismatch, and how it is reported, is decided here
once. numpy only: the ONNX load path imports this without pandas.
"""

from __future__ import annotations

import numpy as np

from modelkeep.errors import GoldenMismatchError
from modelkeep.manifest import GoldenSamples

__all__ = ["check_close", "check_labels", "check_values"]


def check_values(golden: GoldenSamples, got: np.ndarray, *, tolerance: float) -> None:
    """Regression outputs: each within ``tolerance`` relative to ``max(1, |expected|)``."""
    expected = np.asarray(golden.predictions, dtype=np.float64)
    got = np.asarray(got)
    if got.shape != expected.shape:
        raise GoldenMismatchError("predict", golden.rows, None, len(golden.rows))
    diff = np.abs(got.astype(np.float64) - expected) / np.maximum(1.0, np.abs(expected))
    _refuse_beyond("predict", golden, diff, tolerance)


def check_labels(golden: GoldenSamples, mismatched: np.ndarray) -> None:
    """Class labels: ``mismatched`` marks the rows whose label differs (exact comparison,
    after whatever the caller excuses, such as ONNX ties)."""
    bad = np.flatnonzero(mismatched)
    if bad.size:
        raise GoldenMismatchError("predict", golden.rows_at(bad), None, len(golden.rows))


def check_close(golden: GoldenSamples, got: np.ndarray, *, tolerance: float) -> None:
    """Class probabilities: same shape as recorded, each row's largest difference within
    ``tolerance`` (absolute)."""
    want = np.asarray(golden.probabilities, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if got.shape != want.shape:
        raise GoldenMismatchError("predict_proba", golden.rows, None, len(golden.rows))
    _refuse_beyond("predict_proba", golden, np.abs(got - want).max(axis=1), tolerance)


def _refuse_beyond(method: str, golden: GoldenSamples, diff: np.ndarray, tolerance: float) -> None:
    # ``~(diff <= tolerance)`` rather than ``diff > tolerance``: a NaN output is a mismatch.
    bad = np.flatnonzero(~(diff <= tolerance))
    if bad.size:
        raise GoldenMismatchError(
            method, golden.rows_at(bad), float(np.nanmax(diff)), len(golden.rows), tolerance
        )

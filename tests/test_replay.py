"""The one golden-output comparison (``modelkeep._replay``) that both replays use."""

from __future__ import annotations

import numpy as np
import pytest

from modelkeep._replay import check_close, check_labels, check_values
from modelkeep.errors import GoldenMismatchError
from modelkeep.manifest import GoldenSamples


def _golden(predictions: list[object], probabilities: list[list[float]] | None = None):
    return GoldenSamples(
        rows=[10, 20, 30][: len(predictions)],
        inputs={"x": [0.0] * len(predictions)},
        predictions=predictions,
        probabilities=probabilities,
    )


def test_values_within_relative_tolerance_pass_and_beyond_name_the_rows() -> None:
    golden = _golden([1000.0, 0.5, -2.0])
    check_values(golden, np.array([1000.0005, 0.5000004, -2.0]), tolerance=1e-6)
    with pytest.raises(GoldenMismatchError, match=r"1 of 3 golden rows differ \(rows 20\)") as err:
        check_values(golden, np.array([1000.0, 0.6, -2.0]), tolerance=1e-6)
    assert err.value.rows == (20,)
    assert err.value.largest_difference == pytest.approx(0.1)


def test_a_nan_output_is_a_mismatch_not_a_pass() -> None:
    golden = _golden([1.0, 2.0])
    with pytest.raises(GoldenMismatchError) as err:
        check_values(golden, np.array([np.nan, 2.0]), tolerance=1.0)
    assert err.value.rows == (10,)
    with pytest.raises(GoldenMismatchError):
        check_close(
            _golden([0, 1], [[0.5, 0.5], [0.2, 0.8]]),
            np.array([[np.nan, 0.5], [0.2, 0.8]]),
            tolerance=1.0,
        )


def test_shape_differences_refuse_every_row() -> None:
    golden = _golden([1.0, 2.0, 3.0])
    with pytest.raises(GoldenMismatchError) as err:
        check_values(golden, np.array([1.0, 2.0]), tolerance=1e-6)
    assert err.value.rows == (10, 20, 30)
    probabilities = _golden([0, 1], [[0.5, 0.5], [0.2, 0.8]])
    with pytest.raises(GoldenMismatchError, match="predict_proba") as err:
        check_close(probabilities, np.array([[0.5, 0.5, 0.0], [0.2, 0.8, 0.0]]), tolerance=1e-6)
    assert err.value.output == "predict_proba"


def test_labels_refuse_only_the_marked_rows() -> None:
    golden = _golden(["a", "b", "c"])
    check_labels(golden, np.array([False, False, False]))
    with pytest.raises(GoldenMismatchError) as err:
        check_labels(golden, np.array([False, True, True]))
    assert err.value.rows == (20, 30)
    assert err.value.largest_difference is None

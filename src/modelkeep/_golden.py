"""Golden samples: rows of the training sample with the outputs the model gave at save time.

They are replayed on every load; a model that no longer reproduces them is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from modelkeep._inputs import format_values, plain_values
from modelkeep._replay import check_close, check_labels, check_values
from modelkeep._schema import prepare, to_json_columns
from modelkeep.errors import SampleMismatchError
from modelkeep.manifest import FeatureSpec, GoldenSamples

__all__ = ["check_sample_kinds", "model_input", "record_golden", "replay_golden", "select_rows"]

_PROBE_ROWS = 100


def model_input(estimator: Any, frame: pd.DataFrame) -> pd.DataFrame | np.ndarray:
    """What to hand the estimator: the frame, or its values if it was fitted without names.

    An estimator fitted on an array warns when given a DataFrame; it gets the array it knows.
    """
    if hasattr(estimator, "feature_names_in_"):
        return frame
    return frame.to_numpy()


def check_sample_kinds(model: Any, sample: pd.DataFrame, features: Sequence[FeatureSpec]) -> None:
    """Refuse a sample whose text column holds numbers the model reads as numbers.

    The schema takes each column's kind from the sample, and the bundle then accepts only
    that kind: a ``tenure`` column read from a CSV as text would make a bundle that rejects
    the integers the model was fitted on. scikit-learn's numeric steps (scalers, trees)
    quietly parse such text, so the model itself cannot tell; what tells is that its
    outputs do not change when the column is given as numbers. A text column the model
    uses as text (one-hot categories such as "01", "02") changes them, and is kept.

    Raises:
        SampleMismatchError: naming the column, with values and the conversion to make.
    """
    import pandas as pd

    probe = sample.iloc[select_rows(sample, _PROBE_ROWS)]
    for spec in features:
        if spec.dtype != "string":
            continue
        text = probe[spec.name]
        numbers = pd.to_numeric(text, errors="coerce")
        if numbers.isna().sum() != text.isna().sum() or text.isna().all():
            continue  # some value is not a number: the column is text
        if _same_outputs(model, probe, probe.assign(**{spec.name: numbers})):
            shown = format_values(text.dropna().unique())
            raise SampleMismatchError(
                f"sample column {spec.name!r}: expected the kind of values the model was "
                f"fitted on, got text holding numbers ({shown}) that the model reads as "
                "numbers (it predicts the same when given them as numbers), so a bundle "
                "saved from this sample would refuse numeric input. Convert the column "
                f"first, e.g. sample[{spec.name!r}] = pd.to_numeric(sample[{spec.name!r}])"
            )


def _same_outputs(model: Any, text: pd.DataFrame, numbers: pd.DataFrame) -> bool:
    try:
        outputs = [np.asarray(model.predict(model_input(model, f))) for f in (text, numbers)]
        if not np.array_equal(outputs[0], outputs[1]):
            return False
        if hasattr(model, "predict_proba"):
            probas = [
                np.asarray(model.predict_proba(model_input(model, f))) for f in (text, numbers)
            ]
            return bool(np.allclose(probas[0], probas[1], rtol=0, atol=1e-12))
    except Exception:  # the model refuses one of them: it does not read both alike
        return False
    return True


def select_rows(sample: pd.DataFrame, n: int) -> list[int]:
    """``n`` deterministic row positions of ``sample``, spread over it.

    When some rows have missing values, up to half of the picks come from them, so that the
    replay exercises the pipeline's imputation too. Rows holding an infinite number are
    never picked.
    """
    total = len(sample)
    if n <= 0 or total == 0:
        return []
    if total <= n:
        return list(range(total))
    has_missing = sample.isna().any(axis=1).to_numpy()
    # JSON cannot hold an infinite float, so rows with one cannot be golden rows.
    numeric = sample.select_dtypes(include="number")
    finite = ~np.isinf(numeric.to_numpy(dtype=float)).any(axis=1) if numeric.shape[1] else True
    missing = np.flatnonzero(has_missing & finite)
    complete = np.flatnonzero(~has_missing & finite)
    n_missing = min(len(missing), max(1, n // 2)) if len(missing) else 0
    picks = _spread(missing, n_missing) + _spread(complete, n - n_missing)
    return sorted(picks)


def _spread(positions: np.ndarray, k: int) -> list[int]:
    if k <= 0 or len(positions) == 0:
        return []
    index = np.linspace(0, len(positions) - 1, num=min(k, len(positions))).round().astype(int)
    return [int(positions[i]) for i in np.unique(index)]


def record_golden(
    model: Any, sample: pd.DataFrame, features: Sequence[FeatureSpec], n: int, *, proba: bool
) -> GoldenSamples:
    """Pick golden rows of ``sample`` and record the model's outputs on them.

    Outputs are computed on the rows as they will be rebuilt from the manifest's JSON, so
    the replay compares like with like. ``proba`` records class probabilities too, when
    the model has ``predict_proba``: a classifier without it (``LinearSVC``, a
    ``Pipeline`` ending in one) gets its labels recorded alone.
    """
    proba = proba and hasattr(model, "predict_proba")
    rows = select_rows(sample, n)
    inputs = to_json_columns(sample.iloc[rows], features)
    if not rows:
        return GoldenSamples(rows=[], inputs=inputs, predictions=[], probabilities=None)
    frame = model_input(model, prepare(inputs, features))
    predictions = plain_values(np.asarray(model.predict(frame)))
    probabilities = None
    if proba:
        probabilities = np.asarray(model.predict_proba(frame), dtype=float).tolist()
    return GoldenSamples(
        rows=rows, inputs=inputs, predictions=predictions, probabilities=probabilities
    )


def replay_golden(
    model: Any, golden: GoldenSamples, features: Sequence[FeatureSpec], *, atol: float
) -> int:
    """Run the model on the golden inputs; raise :class:`GoldenMismatchError` on a difference.

    Class predictions must be exactly equal; probabilities, and regression predictions,
    within ``atol`` (regression: ``atol`` relative to the value's magnitude, at least 1).
    Returns the number of rows replayed.
    """
    n = len(golden.rows)
    if n == 0:
        return 0
    frame = model_input(model, prepare(golden.inputs, features))
    got = np.asarray(model.predict(frame))
    expected = np.asarray(golden.predictions)
    if np.issubdtype(expected.dtype, np.floating) and golden.probabilities is None:
        check_values(golden, got, tolerance=atol)
    elif got.shape != expected.shape:
        check_labels(golden, np.ones(n, dtype=bool))
    else:
        check_labels(golden, _python_values(got) != _python_values(expected))
    if golden.probabilities is not None:
        check_close(golden, np.asarray(model.predict_proba(frame), dtype=float), tolerance=atol)
    return n


def _python_values(values: np.ndarray) -> np.ndarray:
    # Compare as Python objects: an int64 class 1 and a JSON 1 are the same label, and
    # strings stored as numpy str_ compare equal to Python str.
    return np.array(plain_values(values), dtype=object)

"""The reference profile: the training sample's distributions, recorded by ``save()``.

Per feature: the row count and missing count; a numeric feature's min, max, mean, std and
quantile bins (inner edges of right-closed bins, the outer two open) with their counts; a
categorical feature's value counts up to a cap, then ``other``. Per model output: the
predicted class shares and a probability histogram per class, or regression quantiles.

``modelkeep.monitor`` measures live data against it with the same binning helpers
(:func:`numeric_values`, :func:`text_values`, :func:`bin_counts`), so the reference and the
current counts are made alike. numpy and pandas only: the core must not import the
monitoring floor, so the floor imports this.

Deterministic: the same sample gives the same profile, value for value (numbers rounded
to six significant digits, categories sorted), so the manifest's bytes do not change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from modelkeep.manifest import FeatureSpec, ProfileFeature, ReferenceProfile, Target, Task

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BINS",
    "CATEGORY_CAP",
    "OUTPUT_ROWS",
    "PREDICTION",
    "PROBABILITY_EDGES",
    "bin_counts",
    "build_profile",
    "feature_kind",
    "numeric_profile",
    "numeric_values",
    "output_key",
    "probability_name",
    "profile_features",
    "round6",
    "text_profile",
    "text_values",
]

BINS = 20
CATEGORY_CAP = 50
# The model runs on at most this many rows of the sample (evenly spread) for its outputs.
OUTPUT_ROWS = 5000
PREDICTION = "prediction"
PROBABILITY_EDGES = [round(0.1 * i, 1) for i in range(1, 10)]
_NUMERIC_DTYPES = frozenset({"integer", "float", "datetime"})


def round6(value: float) -> float:
    """``value`` to six significant digits: small JSON, and stable across platforms."""
    return float(f"{value:.6g}")


def feature_kind(dtype: str) -> str:
    """``numeric`` for integer, float and datetime features, ``categorical`` otherwise."""
    return "numeric" if dtype in _NUMERIC_DTYPES else "categorical"


def numeric_values(values: Any, dtype: str = "float") -> np.ndarray:
    """A column as float64 (datetimes as POSIX seconds); what cannot be read is NaN."""
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if dtype == "datetime":
        stamps = pd.to_datetime(series, errors="coerce", utc=True)
        seconds = (stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
        return np.asarray(seconds, dtype=np.float64)
    if series.dtype == bool:
        return series.to_numpy(dtype=np.float64)
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    numbers = pd.to_numeric(series, errors="coerce")
    return np.asarray(numbers, dtype=np.float64)


def text_values(values: Any) -> pd.Series:
    """A column as text (missing values stay missing), the form category counts are kept in."""
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(values)
    missing = series.isna().to_numpy()
    text = series.astype(object).where(~missing, None).map(_text, na_action="ignore")
    result: pd.Series = pd.Series(text.to_numpy(dtype=object), dtype=object)
    return result


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 1.0 read back from a CSV is the category 1
    return str(value)


def bin_counts(values: np.ndarray, edges: Sequence[float] | np.ndarray) -> np.ndarray:
    """Counts of the non-missing ``values`` in the right-closed bins ``edges`` bound."""
    present = values[~np.isnan(values)]
    positions = np.searchsorted(np.asarray(edges, dtype=np.float64), present, side="left")
    return np.bincount(positions, minlength=len(edges) + 1)


def numeric_profile(
    name: str,
    values: np.ndarray,
    *,
    bins: int = BINS,
    edges: Sequence[float] | None = None,
) -> ProfileFeature:
    """A numeric column's profile: quantile bin edges (or the ``edges`` given) and counts."""
    present = values[~np.isnan(values)]
    finite = present[np.isfinite(present)]
    if edges is None:
        if finite.size:
            cuts = np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)[1:-1])
            edges = sorted({round6(float(c)) for c in cuts})
        else:
            edges = []
    counts = bin_counts(values, edges)
    return ProfileFeature(
        name=name,
        kind="numeric",
        count=int(values.size),
        missing=int(values.size - present.size),
        min=round6(float(finite.min())) if finite.size else None,
        max=round6(float(finite.max())) if finite.size else None,
        mean=round6(float(finite.mean())) if finite.size else None,
        std=round6(float(finite.std())) if finite.size else None,
        edges=[float(e) for e in edges],
        counts=[int(c) for c in counts],
    )


def text_profile(name: str, values: pd.Series, *, cap: int = CATEGORY_CAP) -> ProfileFeature:
    """A categorical column's profile: each value's count (the ``cap`` commonest), ``other``."""
    present = values.dropna()
    counted = present.value_counts(sort=False)
    ranked = sorted(
        ((str(k), int(v)) for k, v in counted.items()), key=lambda item: (-item[1], item[0])
    )
    kept = dict(sorted(ranked[:cap]))
    return ProfileFeature(
        name=name,
        kind="categorical",
        count=len(values),
        missing=int(len(values) - len(present)),
        categories=kept,
        other=int(sum(count for _, count in ranked[cap:])),
    )


def profile_features(
    frame: pd.DataFrame,
    features: Sequence[FeatureSpec],
    *,
    bins: int = BINS,
    category_cap: int = CATEGORY_CAP,
) -> list[ProfileFeature]:
    """One profile per feature of ``frame``, in the schema's order."""
    profiles = []
    for spec in features:
        column = frame[spec.name]
        if feature_kind(spec.dtype) == "numeric":
            values = numeric_values(column, spec.dtype)
            profiles.append(numeric_profile(spec.name, values, bins=bins))
        else:
            profiles.append(text_profile(spec.name, text_values(column), cap=category_cap))
    return profiles


def output_key(value: Any, labels: Mapping[Any, str] | None) -> str:
    """How a class is named in the profile: its business label, else its value as text."""
    if labels is not None and value in labels:
        return labels[value]
    return _text(value.item() if hasattr(value, "item") else value)


def probability_name(key: str) -> str:
    return f"probability:{key}"


def build_profile(
    model: Any,
    frame: pd.DataFrame,
    features: Sequence[FeatureSpec],
    *,
    task: Task,
    classes: Sequence[Any] | None,
    target: Target,
    bins: int = BINS,
    category_cap: int = CATEGORY_CAP,
    output_rows: int = OUTPUT_ROWS,
) -> ReferenceProfile:
    """The reference profile of ``frame`` and of ``model``'s outputs on (part of) it.

    ``model`` is the fitted estimator (``predict``/``predict_proba`` on a frame of the
    schema's columns); ``target`` maps its classes to business labels.
    """
    rows = _output_rows(frame, features, output_rows)
    try:
        outputs = _outputs(model, rows, task, classes, target, bins, category_cap)
    except Exception:  # a model that refuses these rows: the profile holds features only
        outputs = []
    return ReferenceProfile(
        bins=bins,
        category_cap=category_cap,
        rows=len(frame),
        output_rows=len(rows) if outputs else 0,
        features=profile_features(frame, features, bins=bins, category_cap=category_cap),
        outputs=outputs,
    )


def _output_rows(frame: pd.DataFrame, features: Sequence[FeatureSpec], limit: int) -> pd.DataFrame:
    """Up to ``limit`` rows spread evenly over the sample, leaving out rows holding an
    infinite number (which most models refuse, as the golden rows do)."""
    numeric = [f.name for f in features if f.dtype in ("integer", "float")]
    if numeric:
        values = frame[numeric].to_numpy(dtype=np.float64, na_value=np.nan)
        frame = frame.loc[~np.isinf(values).any(axis=1)]
    if not len(frame):
        return frame
    positions = np.unique(np.linspace(0, len(frame) - 1, min(len(frame), limit)).round())
    chosen: pd.DataFrame = frame.iloc[positions.astype(np.int64)]
    return chosen


def _outputs(
    model: Any,
    rows: pd.DataFrame,
    task: Task,
    classes: Sequence[Any] | None,
    target: Target,
    bins: int,
    category_cap: int,
) -> list[ProfileFeature]:
    """The profiles of the model's outputs on ``rows``."""
    import pandas as pd

    from modelkeep._golden import model_input

    if not len(rows):
        return []
    labels = {e.value: e.label for e in target.labels} if target.labels else None
    given = model_input(model, rows)
    predicted = np.asarray(model.predict(given))
    if task == "regression":
        values = np.asarray(predicted, dtype=np.float64).ravel()
        return [numeric_profile(PREDICTION, values, bins=bins)]
    names = pd.Series([output_key(p, labels) for p in predicted.tolist()], dtype=object)
    outputs = [text_profile(PREDICTION, names, cap=category_cap)]
    if hasattr(model, "predict_proba") and classes is not None:
        proba = np.asarray(model.predict_proba(given), dtype=np.float64)
        for column, value in enumerate(classes):
            outputs.append(
                numeric_profile(
                    probability_name(output_key(value, labels)),
                    proba[:, column],
                    edges=PROBABILITY_EDGES,
                )
            )
    return outputs

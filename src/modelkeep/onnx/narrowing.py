"""What a converted graph refuses that the schema admits: where the original refuses it.

In the default, non-strict mode a missing value is accepted (with a warning) in every
column whose input can hold one (float and string inputs), and an unseen category in
every string column. Some originals refuse them: trees that do not take NaN
(GradientBoosting), an encoder with ``handle_unknown="error"``, a text vectorizer given
None. The graph would answer anyway, with a number the original never gives, or fail
inside onnxruntime; instead it refuses them as the original does, with a
:class:`~modelkeep.errors.SchemaError` naming the column.

:func:`narrowing` finds those columns by asking the original: one row built from the
schema, then the same row with one column missing (or unseen); a column is narrowed when
the original answers the row and raises on its variant.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Final

from modelkeep.errors import SchemaWarning
from modelkeep.manifest import FeatureSpec
from modelkeep.onnx.inputs import MISSING_CATEGORY, InputKind, Narrowing

__all__ = ["UNSEEN_PROBE", "narrowing"]

#: The category the original is asked about as "not seen in training".
UNSEEN_PROBE: Final = "modelkeep:unseen-category"


def _base_value(spec: FeatureSpec) -> Any:
    if spec.dtype in ("integer", "float"):
        if spec.min is None or spec.max is None:
            return 0
        middle = (spec.min + spec.max) / 2
        return round(middle) if spec.dtype == "integer" else middle
    if spec.dtype == "boolean":
        return False
    if spec.categories:
        return spec.categories[0]
    return UNSEEN_PROBE


def _raises(model: Any, columns: dict[str, list[Any]], features: Sequence[FeatureSpec]) -> bool:
    from modelkeep._schema import prepare

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            frame = prepare(columns, features)
        except Exception:  # the schema itself refuses it: nothing to narrow
            return False
        try:
            model.predict(frame)
        except Exception:
            return True
    return False


def narrowing(model: Any, features: Sequence[FeatureSpec], kinds: Sequence[InputKind]) -> Narrowing:
    """The columns where the original refuses a missing value or an unseen category."""
    base = {spec.name: [_base_value(spec)] for spec in features}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SchemaWarning)
        if _raises(model, base, features):
            return Narrowing(missing_string=MISSING_CATEGORY)  # cannot tell: none
    # int64 and bool inputs cannot hold a missing value at all.
    nullable = [s.name for s, k in zip(features, kinds, strict=True) if k in ("double", "string")]
    strings = [s.name for s, k in zip(features, kinds, strict=True) if k == "string"]
    refuse_missing = _refused(model, features, base, nullable, None)
    refuse_unseen = _refused(model, features, base, strings, UNSEEN_PROBE)
    return Narrowing(
        missing_string=MISSING_CATEGORY,
        refuse_missing=tuple(refuse_missing),
        refuse_unseen=tuple(refuse_unseen),
    )


def _refused(
    model: Any,
    features: Sequence[FeatureSpec],
    base: dict[str, list[Any]],
    names: Sequence[str],
    value: Any,
) -> list[str]:
    """The columns of ``names`` where the original raises on ``value`` in the base row.

    One call for all of them first (one row per column): when the original answers every
    row, none is refused; otherwise each column is asked alone.
    """
    if not names:
        return []
    batch = {k: v * len(names) for k, v in base.items()}
    for position, name in enumerate(names):
        batch[name] = [*batch[name]]
        batch[name][position] = value
    if not _raises(model, batch, features):
        return []
    return [name for name in names if _raises(model, {**base, name: [value]}, features)]

"""The shape of a fitted model: its steps by path, its first and last step (scikit-learn)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["final_estimator", "qualname", "takes_named_columns", "walk"]


def walk(model: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, estimator) for ``model`` and every step inside it, depth first.

    Paths join step names with ``/``: ``"preprocess/numeric/scale"``; the model is ``""``.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    yield path, model
    children: list[tuple[str, Any]] = []
    if isinstance(model, Pipeline):
        children = [(name, step) for name, step in model.steps]
    elif isinstance(model, ColumnTransformer):
        children = [(name, step) for name, step, _ in model.transformers_]
    elif isinstance(model, FeatureUnion):
        children = list(model.transformer_list)
    for name, step in children:
        if step is None or isinstance(step, str):  # "passthrough", "drop"
            continue
        yield from walk(step, f"{path}/{name}" if path else name)


def final_estimator(model: Any) -> Any:
    """The last step of a (nested) Pipeline, or the model itself."""
    from sklearn.pipeline import Pipeline

    while isinstance(model, Pipeline):
        model = model.steps[-1][1]
    return model


def takes_named_columns(model: Any) -> bool:
    """Whether the model's first step selects columns by name (a ColumnTransformer)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    while isinstance(model, Pipeline):
        model = model.steps[0][1]
    return isinstance(model, ColumnTransformer)


def qualname(model: Any) -> str:
    """``module.Class`` of ``model``, with scikit-learn's private modules left out."""
    cls = type(model)
    module = cls.__module__
    if module.startswith("sklearn."):  # the public path users import from
        module = ".".join(p for p in module.split(".") if not p.startswith("_"))
    return f"{module}.{cls.__qualname__}"

"""The loaded model: validated predictions in business labels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from modelkeep.manifest import FeatureSpec, Manifest, Scalar

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Model"]

# pandas, the schema and golden modules are imported inside the methods that use them:
# an ONNX model (a subclass) serves without pandas installed.


class Model:
    """A verified model from a bundle.

    Every call to :meth:`predict` or :meth:`predict_proba` first validates and coerces its
    input against the feature schema (see :func:`modelkeep.schema.prepare`): columns are
    put in order, missing ones are an error, unknown ones are dropped with a warning, and
    values are converted to the dtypes the pipeline was fitted on.

    ``X`` may be a DataFrame, a list of records, a dict of columns, one record (a dict of
    scalars), or a 2-D array with columns in schema order.
    """

    def __init__(self, estimator: Any, manifest: Manifest, *, format: str, source: str) -> None:
        self._estimator = estimator
        self._manifest = manifest
        self.format = format
        self.source = source
        self._features = list(manifest.features)
        classes = manifest.target.classes
        label_map = manifest.label_map()
        self._classes: np.ndarray | None = None
        self._labels: np.ndarray | None = None
        if classes is not None:
            self._classes = np.asarray(estimator.classes_)
            lookup = label_map or {}
            self._labels = np.array(
                [lookup.get(_item(c), str(_item(c))) for c in self._classes], dtype=object
            )

    @property
    def manifest(self) -> Manifest:
        """The bundle's manifest."""
        return self._manifest

    @property
    def schema(self) -> list[FeatureSpec]:
        """The ordered feature schema inputs are validated against."""
        return list(self._features)

    @property
    def estimator(self) -> Any:
        """The underlying fitted estimator (for example a scikit-learn Pipeline)."""
        return self._estimator

    @property
    def labels(self) -> dict[Scalar, str] | None:
        """Model output -> business label, or None for a regression model."""
        return self._manifest.label_map()

    @property
    def task(self) -> str:
        return self._manifest.task

    def prepare(self, X: Any, *, strict: bool = False) -> pd.DataFrame:
        """``X`` validated and coerced to the schema, as the pipeline will receive it."""
        from modelkeep.schema import prepare

        return prepare(X, self._features, strict=strict)

    def predict(self, X: Any, *, strict: bool = False) -> np.ndarray:
        """Predictions for ``X``: business labels for a classifier, numbers for a regressor.

        Raises:
            SchemaError: a column is missing, or a value cannot be converted; with
                ``strict=True`` also unknown columns, unseen categories, values outside the
                training range and unexpected missing values (otherwise warnings).
        """
        raw = np.asarray(self._estimator.predict(self._input(X, strict)))
        if self._labels is None or self._classes is None:
            return raw
        positions = np.searchsorted(self._classes, raw)
        positions = np.clip(positions, 0, len(self._classes) - 1)
        if not np.array_equal(self._classes[positions], raw):
            # classes_ is sorted for every scikit-learn classifier; fall back if not.
            index = {_item(c): i for i, c in enumerate(self._classes)}
            positions = np.array([index[_item(v)] for v in raw], dtype=int)
        return self._labels[positions]

    def predict_proba(self, X: Any, *, strict: bool = False) -> pd.DataFrame:
        """Class probabilities: one row per input, one column per business label."""
        if self._labels is None:
            raise TypeError(
                f"predict_proba: expected a classifier, got a {self._manifest.task} model; "
                "use predict()."
            )
        import pandas as pd

        proba = np.asarray(self._estimator.predict_proba(self._input(X, strict)))
        frame: pd.DataFrame = pd.DataFrame(proba, columns=pd.Index(self._labels.tolist()))
        return frame

    def _input(self, X: Any, strict: bool) -> Any:
        from modelkeep.golden import model_input
        from modelkeep.schema import prepare

        return model_input(self._estimator, prepare(X, self._features, strict=strict))

    def __repr__(self) -> str:
        m = self._manifest
        return (
            f"<Model {m.name!r} version {m.version} ({m.task}, {len(self._features)} features, "
            f"{self.format})>"
        )


def _item(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value

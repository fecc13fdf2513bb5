"""The loaded model: validated predictions in business labels.

:class:`Model` is what every load returns: the bundle's manifest, schema, labels and the
three calls (``prepare``, ``predict``, ``predict_proba``), each runtime implementing the
calls. :class:`SklearnModel` serves a deserialized scikit-learn estimator;
:class:`modelkeep.onnx.model.OnnxModel`, its sibling, an onnxruntime session. The load
sequence (``modelkeep._bundle``) builds them; the formats only open artifacts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

from modelkeep._inputs import not_a_classifier, plain_value
from modelkeep.manifest import FeatureSpec, Manifest, Scalar

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Model", "SklearnModel"]

# pandas, the schema and golden modules are imported inside the methods that use them:
# an ONNX model (a sibling) serves without pandas installed.


class Model(ABC):
    """A verified model from a bundle: what :func:`modelkeep.load` returns.

    ``served`` is what the format opened (a scikit-learn estimator, an onnxruntime
    session's wrapper). Subclasses implement :meth:`prepare`, :meth:`predict` and
    :meth:`predict_proba` for their runtime, with these signatures, and
    :meth:`_classes_of` (the classes in the runtime's own order).
    """

    def __init__(self, served: Any, manifest: Manifest, *, format: str, source: str) -> None:
        self._estimator = served
        self._manifest = manifest
        self.format = format
        self.source = source
        self._features = list(manifest.features)
        self._classes: np.ndarray | None = None
        # What predict returns per class: business labels, or the classes themselves.
        self._labels: np.ndarray | None = None
        self._label_map = business_labels(manifest)
        if manifest.target.classes is not None:
            self._classes = self._classes_of(served)
            if self._label_map is None:
                self._labels = self._classes
            else:
                lookup = self._label_map
                self._labels = np.array(
                    [lookup[plain_value(c)] for c in self._classes], dtype=object
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
        """The underlying fitted estimator (for example a scikit-learn Pipeline); for an
        ONNX model the :class:`~modelkeep.onnx.runtime.OnnxRuntime` holding the session."""
        return self._estimator

    @property
    def labels(self) -> dict[Scalar, str] | None:
        """Model output -> business label; None for a regressor or without a label map."""
        return None if self._label_map is None else dict(self._label_map)

    @property
    def task(self) -> str:
        """``"binary"``, ``"multiclass"`` or ``"regression"``, as the manifest records."""
        return self._manifest.task

    @abstractmethod
    def _classes_of(self, served: Any) -> np.ndarray:
        """The classes of a classifier's runtime, in the order its outputs use."""

    @abstractmethod
    def prepare(self, X: Any, *, strict: bool = False) -> Any:
        """``X`` validated and coerced to the schema, as the runtime will receive it."""

    @abstractmethod
    def predict(self, X: Any, *, strict: bool = False) -> np.ndarray:
        """Predictions for ``X``, one per row."""

    @abstractmethod
    def predict_proba(self, X: Any, *, strict: bool = False) -> Any:
        """Class probabilities: one row per input, one column per business label."""

    def _proba_columns(self) -> np.ndarray:
        if self._labels is None:
            raise not_a_classifier(self._manifest.task)
        return self._labels

    def __repr__(self) -> str:
        m = self._manifest
        return (
            f"<Model {m.name!r} version {m.version} ({m.task}, {len(self._features)} features, "
            f"{self.format})>"
        )


class SklearnModel(Model):
    """A verified model whose predictions come from its scikit-learn estimator.

    Every call to :meth:`predict` or :meth:`predict_proba` first validates and coerces its
    input against the feature schema (see :func:`modelkeep._schema.prepare`): columns are
    put in order, missing ones are an error, unknown ones are dropped with a warning, and
    values are converted to the dtypes the pipeline was fitted on.

    ``X`` may be a DataFrame, a list of records, a dict of columns, one record (a dict of
    scalars), or a 2-D array with columns in schema order.
    """

    def _classes_of(self, served: Any) -> np.ndarray:
        return np.asarray(served.classes_)

    def prepare(self, X: Any, *, strict: bool = False) -> pd.DataFrame:
        """``X`` validated and coerced to the schema, as the pipeline will receive it."""
        from modelkeep._schema import prepare

        return prepare(X, self._features, strict=strict)

    def predict(self, X: Any, *, strict: bool = False) -> np.ndarray:
        """Predictions for ``X``, one per row.

        A classifier gives business labels when the bundle has a label map (``labels=`` at
        save), otherwise the model's own class values with their type (``1``, not
        ``"1"``); a regressor gives numbers. No rows give an empty array.

        Raises:
            SchemaError: a column is missing, or a value cannot be converted; with
                ``strict=True`` also unknown columns, unseen categories, values outside the
                training range and unexpected missing values (otherwise warnings); a value
                the model itself refuses (NaN without an imputer, infinity, a number beyond
                float32 in a tree), naming its column and row.
            InvalidArgumentError: ``strict`` is not a bool.
        """
        frame = self.prepare(X, strict=strict)
        if len(frame) == 0:
            dtype = np.float64 if self._labels is None else self._labels.dtype
            return np.empty(0, dtype=dtype)
        raw = np.asarray(self._call("predict", frame))
        if self._labels is None or self._classes is None or self._labels is self._classes:
            return raw
        positions = np.searchsorted(self._classes, raw)
        positions = np.clip(positions, 0, len(self._classes) - 1)
        if not np.array_equal(self._classes[positions], raw):
            # classes_ is sorted for every scikit-learn classifier; fall back if not.
            index = {plain_value(c): i for i, c in enumerate(self._classes)}
            positions = np.array([index[plain_value(v)] for v in raw], dtype=int)
        return self._labels[positions]

    def predict_proba(self, X: Any, *, strict: bool = False) -> pd.DataFrame:
        """Class probabilities: one row per input, one column per business label.

        Without a label map the columns are the model's classes. A DataFrame input keeps
        its index, so ``df["p"] = model.predict_proba(df)["Churn"]`` aligns row by row.

        Raises:
            InvalidArgumentError: the model is a regressor, or ``strict`` is not a bool.
            SchemaError: as :meth:`predict`.
        """
        labels = self._proba_columns()
        if not hasattr(self._estimator, "predict_proba"):  # LinearSVC: labels only
            from modelkeep.errors import InvalidArgumentError

            final = self._estimator
            while getattr(final, "steps", None):  # a Pipeline: its final estimator
                final = final.steps[-1][1]
            raise InvalidArgumentError(
                "predict_proba",
                "a classifier with class probabilities",
                f"{type(final).__name__}, which has no predict_proba",
                "This model gives labels only; use predict().",
            )
        import pandas as pd

        frame = self.prepare(X, strict=strict)
        if len(frame) == 0:
            proba = np.empty((0, len(labels)), dtype=np.float64)
        else:
            proba = np.asarray(self._call("predict_proba", frame))
        columns = pd.Index(labels.tolist())
        result: pd.DataFrame = pd.DataFrame(proba, index=frame.index, columns=columns)
        return result

    def _call(self, method: str, frame: pd.DataFrame) -> Any:
        """The estimator's ``method`` on a prepared frame; its ValueError as a SchemaError."""
        from modelkeep._golden import model_input
        from modelkeep._schema import model_rejection

        try:
            return getattr(self._estimator, method)(model_input(self._estimator, frame))
        except ValueError as exc:
            name = type(self._estimator).__name__
            steps = getattr(self._estimator, "steps", None)
            if steps:  # a Pipeline: name the final estimator, which is what refuses
                name = type(steps[-1][1]).__name__
            raise model_rejection(exc, frame, self._features, name) from exc


def business_labels(manifest: Manifest) -> dict[Scalar, str] | None:
    """The bundle's label map, or None when predictions should be the classes themselves.

    Bundles saved without ``labels=`` by earlier versions hold a map that spells every class
    as its own text (``{0: "0", 1: "1"}``); that map is no business label, and taking it
    would turn the integer class 1 into the string "1", so it counts as none.
    """
    label_map = manifest.label_map()
    if label_map is None or all(label == str(value) for value, label in label_map.items()):
        return None
    return label_map

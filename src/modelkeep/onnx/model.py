"""The :class:`~modelkeep._model.Model` over an onnxruntime session, sibling of
:class:`~modelkeep._model.SklearnModel`."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelkeep._model import Model
from modelkeep.manifest import Manifest
from modelkeep.onnx.runtime import LABEL, PROBABILITIES, VALUE, OnnxRuntime

__all__ = ["OnnxModel"]

_LABEL = [LABEL]
_PROBABILITIES = [PROBABILITIES]


class OnnxModel(Model):
    """A verified model whose predictions come from its ONNX artifact.

    Same interface as :class:`~modelkeep._model.SklearnModel`; input is validated against the
    schema by :mod:`modelkeep.onnx.inputs` straight into the session's numpy inputs (no
    DataFrame), and neither scikit-learn nor pandas is imported unless ``X`` is a
    DataFrame. Differences: :meth:`prepare` returns those input arrays, and
    :meth:`predict_proba` returns a DataFrame only for a DataFrame input (a 2-D array,
    columns in the order of :attr:`labels`, otherwise). ``estimator`` is the
    :class:`~modelkeep.onnx.runtime.OnnxRuntime` holding the session.
    """

    def __init__(self, runtime: OnnxRuntime, manifest: Manifest, *, format: str, source: str):
        self._runtime = runtime
        super().__init__(runtime, manifest, format=format, source=source)

    def _classes_of(self, served: Any) -> np.ndarray:
        return np.asarray(self._runtime.classes_)

    @property
    def runtime(self) -> OnnxRuntime:
        """The onnxruntime session wrapper (``runtime.session`` is the InferenceSession)."""
        return self._runtime

    def prepare(self, X: Any, *, strict: bool = False) -> dict[str, np.ndarray]:
        """``X`` validated and coerced to the schema, as the session's input arrays."""
        feeds, _ = self._runtime.feeds(X, strict=strict)
        return feeds

    def predict(self, X: Any, *, strict: bool = False) -> np.ndarray:
        """Predictions for ``X``: business labels for a classifier, numbers for a regressor.

        Raises:
            SchemaError: as :meth:`modelkeep._model.SklearnModel.predict`; also a missing value in
                an integer or boolean column the training data had complete.
        """
        feeds, _ = self._runtime.feeds(X, strict=strict)
        if self._labels is None:
            out = self._runtime.run(feeds, [VALUE])
            return np.asarray(out[VALUE], dtype=np.float64).ravel()
        out = self._runtime.session.run(_LABEL, feeds)[0]
        labels: np.ndarray = self._labels[self._runtime.positions(out)]
        return labels

    def predict_proba(self, X: Any, *, strict: bool = False) -> Any:
        """Class probabilities: one row per input, one column per business label.

        A DataFrame for a DataFrame input, as :meth:`modelkeep._model.SklearnModel.predict_proba`;
        for other inputs a 2-D float64 array with the columns in the order of the
        classes, so that serving records needs no pandas.
        """
        labels = self._proba_columns()
        feeds, _ = self._runtime.feeds(X, strict=strict)
        proba = np.asarray(self._runtime.session.run(_PROBABILITIES, feeds)[0], np.float64)
        if type(X).__module__.startswith("pandas") and hasattr(X, "columns"):
            import pandas as pd

            # The input's index, so that assigning the result back to it aligns row by row.
            return pd.DataFrame(proba, index=X.index, columns=pd.Index(labels.tolist()))
        return proba

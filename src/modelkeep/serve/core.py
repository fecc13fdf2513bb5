"""The prediction core behind every endpoint: validate one request, run a batch, split it.

A request's rows are validated on their own (:meth:`Predictor.validate`), so a schema
violation is that request's 422 and never reaches a batch. Validated requests are then run
together (:meth:`Predictor.run`): their prepared inputs are concatenated, the runtime is
called once, and the outputs are split back per request. If the runtime refuses the batch
(a value the model itself rejects, such as NaN for an estimator without an imputer), each
request is run alone, so one request's rows never fail another's.

Validation calls the model's own ``prepare`` (the input core, the same rules and messages as
``Model.predict``); the batch calls the runtime on prepared input without validating again:
scikit-learn's estimator for a :class:`~modelkeep._model.SklearnModel`, the onnxruntime
session for an :class:`~modelkeep.onnx.model.OnnxModel` (no pandas on that path).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelkeep._inputs import plain_value
from modelkeep.errors import SchemaError, SchemaWarning
from modelkeep.serve.table import ServedModel

__all__ = ["Outcome", "Predictor", "Prepared", "predictor_for"]


@dataclass
class Prepared:
    """One request's rows, validated and coerced as the runtime takes them."""

    data: Any
    rows: int
    warnings: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    """One request's outputs: labels (business labels, or numbers for a regressor) and, for
    a classifier with probabilities, one row of probabilities per input row in the order of
    :attr:`Predictor.columns`; or the error the model raised for these rows."""

    labels: list[Any] = field(default_factory=list)
    probabilities: list[list[float]] | None = None
    error: SchemaError | None = None


class Predictor:
    """Validation and batched prediction for one :class:`ServedModel`."""

    def __init__(self, served: ServedModel) -> None:
        self.served = served
        self.model = served.model
        self.classifier = self.model.task != "regression"
        self.has_proba = False
        # Probability columns: business labels (or classes) in the runtime's class order.
        self.columns: list[Any] = []

    def validate(self, X: Any, *, strict: bool) -> Prepared:
        """``X`` checked against the schema, exactly as ``Model.predict(X, strict=)`` would.

        Warnings (unseen categories, values outside the training range ...) are returned
        as text rather than emitted. Runs on the event loop's thread, the only thread that
        validates, so recording warnings here sees no other thread's.

        Raises:
            SchemaError: the input does not fit the schema.
        """
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SchemaWarning)
            data, rows = self._prepare(X, strict)
        return Prepared(
            data, rows, [str(w.message) for w in caught if issubclass(w.category, SchemaWarning)]
        )

    def _prepare(self, X: Any, strict: bool) -> tuple[Any, int]:
        raise NotImplementedError

    def run(self, batch: Sequence[Prepared]) -> list[Outcome]:
        """One runtime call for every request of ``batch``; one :class:`Outcome` each."""
        if len(batch) == 1:
            return [self._run_one(batch[0])]
        try:
            labels, proba = self._call(self._concat([p.data for p in batch]))
        except SchemaError:
            return [self._run_one(p) for p in batch]
        outcomes: list[Outcome] = []
        start = 0
        for prepared in batch:
            end = start + prepared.rows
            outcomes.append(Outcome(labels[start:end], None if proba is None else proba[start:end]))
            start = end
        return outcomes

    def _run_one(self, prepared: Prepared) -> Outcome:
        try:
            labels, proba = self._call(prepared.data)
        except SchemaError as exc:
            return Outcome(error=exc)
        return Outcome(labels, proba)

    def _concat(self, parts: list[Any]) -> Any:
        raise NotImplementedError

    def _call(self, data: Any) -> tuple[list[Any], list[list[float]] | None]:
        raise NotImplementedError

    def _labels_from(self, proba: np.ndarray) -> list[Any]:
        # scikit-learn's classifiers predict the class of highest probability (ties to the
        # first class, as numpy's argmax), so one call gives both outputs.
        index = np.argmax(proba, axis=1)
        columns = self.columns
        return [columns[i] for i in index.tolist()]


class SklearnPredictor(Predictor):
    """A scikit-learn estimator: pandas frames from ``prepare``, concatenated per batch."""

    def __init__(self, served: ServedModel) -> None:
        super().__init__(served)
        from modelkeep._golden import model_input
        from modelkeep._schema import model_rejection

        self._model_input = model_input
        self._rejection = model_rejection
        self.estimator = self.model.estimator
        final = self.estimator
        while getattr(final, "steps", None):  # a Pipeline: its final estimator
            final = final.steps[-1][1]
        self._final_name = type(final).__name__
        self.has_proba = self.classifier and hasattr(self.estimator, "predict_proba")
        if self.classifier:
            classes = np.asarray(self.estimator.classes_)
            label_map = self.model.labels
            self.columns = [
                plain_value(c) if label_map is None else label_map[plain_value(c)] for c in classes
            ]
            self._classes = classes

    def _prepare(self, X: Any, strict: bool) -> tuple[Any, int]:
        frame = self.model.prepare(X, strict=strict)
        return frame, len(frame)

    def _concat(self, parts: list[Any]) -> Any:
        import pandas as pd

        return pd.concat(parts, ignore_index=True)

    def _call(self, data: Any) -> tuple[list[Any], list[list[float]] | None]:
        try:
            X = self._model_input(self.estimator, data)
            if self.has_proba:
                proba = np.asarray(self.estimator.predict_proba(X), dtype=np.float64)
                return self._labels_from(proba), proba.tolist()
            raw = np.asarray(self.estimator.predict(X))
        except ValueError as exc:
            raise self._rejection(exc, data, self.model.schema, self._final_name) from exc
        if not self.classifier:
            return raw.astype(np.float64).tolist(), None
        lookup = {plain_value(c): i for i, c in enumerate(self._classes)}
        return [self.columns[lookup[plain_value(v)]] for v in raw.tolist()], None


class OnnxPredictor(Predictor):
    """An ONNX artifact: numpy input arrays from ``prepare``, one session run per batch."""

    def __init__(self, served: ServedModel) -> None:
        super().__init__(served)
        from modelkeep.onnx.model import OnnxModel
        from modelkeep.onnx.runtime import LABEL, PROBABILITIES, VALUE

        if not isinstance(self.model, OnnxModel):
            raise TypeError(f"an ONNX predictor needs an OnnxModel, got {type(self.model)}")
        self.runtime = self.model.runtime
        self._session = self.runtime.session
        self._value = [VALUE]
        self._both = [LABEL, PROBABILITIES]
        self._label = [LABEL]
        outputs = set(self.runtime.output_names)
        self.has_proba = self.classifier and PROBABILITIES in outputs
        classes = self.runtime.classes_
        if self.classifier and classes is not None:
            label_map = self.model.labels
            self.columns = [
                plain_value(c) if label_map is None else label_map[plain_value(c)] for c in classes
            ]

    def _prepare(self, X: Any, strict: bool) -> tuple[Any, int]:
        feeds, rows = self.runtime.feeds(X, strict=strict)
        return feeds, rows

    def _concat(self, parts: list[Any]) -> Any:
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def _call(self, data: Any) -> tuple[list[Any], list[list[float]] | None]:
        if not self.classifier:
            out = self._session.run(self._value, data)[0]
            return np.asarray(out, dtype=np.float64).ravel().tolist(), None
        # The graph's own labels, as OnnxModel.predict gives them (not an argmax of float32
        # probabilities, which could differ on ties).
        if self.has_proba:
            out, proba = self._session.run(self._both, data)
            probabilities = np.asarray(proba, np.float64).tolist()
        else:
            out, probabilities = self._session.run(self._label, data)[0], None
        columns = self.columns
        return [columns[i] for i in self.runtime.positions(out).tolist()], probabilities


class IsolatedPredictor(Predictor):
    """A model loaded with ``isolate=True``: validated here, run in its sandboxed worker
    (one call at a time per worker); outputs come back as checked arrays."""

    def __init__(self, served: ServedModel) -> None:
        super().__init__(served)
        from modelkeep.sandbox import IsolatedModel

        if not isinstance(self.model, IsolatedModel):
            raise TypeError(f"an isolated predictor needs an IsolatedModel, got {type(self.model)}")
        self.has_proba = self.model.has_probabilities
        if self.has_proba:
            self.columns = [plain_value(c) for c in self.model._proba_columns().tolist()]

    def _prepare(self, X: Any, strict: bool) -> tuple[Any, int]:
        frame = self.model.prepare(X, strict=strict)
        return frame, len(frame)

    def _concat(self, parts: list[Any]) -> Any:
        import pandas as pd

        return pd.concat(parts, ignore_index=True)

    def _call(self, data: Any) -> tuple[list[Any], list[list[float]] | None]:
        if self.has_proba:
            proba = np.asarray(self.model.predict_proba(data), dtype=np.float64)
            return self._labels_from(proba), proba.tolist()
        raw = np.asarray(self.model.predict(data))
        if not self.classifier:
            return raw.astype(np.float64).tolist(), None
        return [plain_value(v) for v in raw.tolist()], None


def predictor_for(served: ServedModel) -> Predictor:
    """The :class:`Predictor` for ``served``'s runtime."""
    from modelkeep.sandbox import IsolatedModel

    if isinstance(served.model, IsolatedModel):
        return IsolatedPredictor(served)
    if served.model.format == "onnx":
        return OnnxPredictor(served)
    return SklearnPredictor(served)

"""The caller's handles on a model served by a sandboxed worker.

:class:`IsolatedModel` is a :class:`~modelkeep._model.Model` like any other: inputs are
validated and coerced against the schema here, in the caller; the prepared columns go to
the worker as arrays (text as JSON lists); what comes back is checked before it is
returned: predictions are positions into the classes the worker reported at load time
(each within range), probabilities a finite float matrix of one row per input and one
column per class, regression outputs one finite number per row.

After a worker crash, a limit hit or a timeout, the call raises and the next call starts
a fresh worker that loads the bundle again (:meth:`IsolatedModel.restart` does it at once).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from modelkeep import errors
from modelkeep._model import Model
from modelkeep.errors import InvalidArgumentError, SandboxCrashError
from modelkeep.manifest import Manifest, parse_manifest
from modelkeep.sandbox import _wire
from modelkeep.sandbox._confine import Limits
from modelkeep.sandbox._launcher import Worker, _settable

__all__ = ["IsolatedEstimator", "IsolatedModel", "open_bundle", "open_file"]


def _classes_array(values: Sequence[Any]) -> np.ndarray:
    if any(isinstance(v, str) for v in values):
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
        return array
    return np.asarray(values)


def _send_columns(frame: Any) -> tuple[dict[str, Any], list[np.ndarray]]:
    names: list[str] = []
    kinds: list[dict[str, Any]] = []
    arrays: list[np.ndarray] = []
    for name in frame.columns:
        series = frame[name]
        values = series.to_numpy()
        if str(series.dtype) == "category":
            values = series.astype(object).to_numpy()
        kind, array = _wire.column_values(values)
        names.append(str(name))
        kinds.append(kind)
        if array is not None:
            arrays.append(array)
    return {"columns": names, "kinds": kinds}, arrays


def _reemit(reported: Sequence[Any]) -> None:
    """Warnings the worker recorded while loading, as the same modelkeep classes."""
    for item in reported:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", ""))[:20_000]
        name = item.get("class")
        category: type[Warning] = errors.ModelkeepWarning
        if isinstance(name, str) and name in errors.__all__:
            found = getattr(errors, name)
            if isinstance(found, type) and issubclass(found, errors.ModelkeepWarning):
                category = found
        warning = category.__new__(category)
        Warning.__init__(warning, message)
        fields = item.get("fields")
        if isinstance(fields, dict):
            for key, value in fields.items():
                if _settable(category, key):
                    setattr(warning, key, tuple(value) if isinstance(value, list) else value)
        warnings.warn(warning, stacklevel=4)


class IsolatedModel(Model):
    """A bundle loaded, checked and served in a sandboxed worker (``isolate=True``).

    Same methods as every :class:`~modelkeep.Model`; :attr:`confinement` says what the
    worker runs under; :meth:`close` ends the worker (also done on collection); use it as
    a context manager to end it at a known point.
    """

    def __init__(
        self, manifest: Manifest, classes: np.ndarray, *, format: str, source: str, opener: Any
    ) -> None:
        self._opener = opener
        self._worker: Worker | None = None
        # One request at a time on the worker's pipes (a service may call from threads).
        self._lock = threading.Lock()
        super().__init__(classes, manifest, format=format, source=source)
        self._estimator = None

    @property
    def estimator(self) -> Any:
        """None: the estimator lives in the worker, and never leaves it."""
        return None

    @property
    def has_probabilities(self) -> bool:
        """Whether the model in the worker gives class probabilities, as the bundle recorded
        at save (golden probabilities; a classifier without ``predict_proba``, such as
        ``LinearSVC``, recorded labels alone). The estimator itself is never asked here."""
        golden = self.manifest.golden
        return self.task != "regression" and (golden.probabilities is not None or not golden.rows)

    @property
    def confinement(self) -> dict[str, str]:
        """What the worker's confinement applied (``{"landlock": "ABI 7", ...}``)."""
        return {} if self._worker is None else dict(self._worker.confinement)

    def _classes_of(self, served: Any) -> np.ndarray:
        return np.asarray(served)

    def prepare(self, X: Any, *, strict: bool = False) -> Any:
        """``X`` validated and coerced to the schema, here in the caller."""
        from modelkeep._schema import prepare

        return prepare(X, self._features, strict=strict)

    def restart(self) -> None:
        """End the worker and load the bundle again in a fresh one."""
        self.close()
        self._worker = self._opener()

    def close(self) -> None:
        """End the worker and remove its scratch folder; the next call starts another."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def __enter__(self) -> IsolatedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _attach(self, worker: Worker) -> None:
        self._worker = worker

    def _ask(self, method: str, frame: Any) -> tuple[dict[str, Any], list[np.ndarray]]:
        with self._lock:
            return self._ask_locked(method, frame)

    def _ask_locked(self, method: str, frame: Any) -> tuple[dict[str, Any], list[np.ndarray]]:
        if self._worker is None or not self._worker.alive:
            self.restart()
        worker = self._worker
        if worker is None:  # pragma: no cover - restart() sets it or raises
            raise SandboxCrashError(self.source, method, "no worker")
        header, arrays = _send_columns(frame)
        try:
            return worker.request({"op": "call", "method": method, **header}, arrays, during=method)
        except errors.ModelkeepError:
            if not worker.alive:
                self._worker = None
            raise

    def predict(self, X: Any, *, strict: bool = False) -> np.ndarray:
        """Predictions for ``X``, one per row, computed in the worker (see
        :meth:`modelkeep.Model.predict`).

        Raises:
            SchemaError: as for any model (checked here, before the worker sees it).
            SandboxCrashError, SandboxResourceError: the worker died or hit a limit.
        """
        frame = self.prepare(X, strict=strict)
        n = len(frame)
        if n == 0:
            dtype = np.float64 if self._labels is None else self._labels.dtype
            return np.empty(0, dtype=dtype)
        reply, arrays = self._ask("predict", frame)
        if self._labels is None:
            values = self._checked(reply, arrays, "values", (n,), "predict")
            if values.dtype.kind != "f" or not np.isfinite(values).all():
                raise self._bad("predict", "regression outputs that are not finite numbers")
            return values
        positions = self._checked(reply, arrays, "positions", (n,), "predict")
        if positions.dtype.kind not in "iu" or (
            n and (positions.min() < 0 or positions.max() >= len(self._labels))
        ):
            raise self._bad("predict", "class positions out of range")
        labels: np.ndarray = self._labels[positions]
        return labels

    def predict_proba(self, X: Any, *, strict: bool = False) -> Any:
        """Class probabilities, one column per business label (see
        :meth:`modelkeep.Model.predict_proba`), computed in the worker.

        Raises:
            InvalidArgumentError: the model is a regressor.
            SchemaError, SandboxCrashError, SandboxResourceError: as :meth:`predict`.
        """
        import pandas as pd

        labels = self._proba_columns()
        frame = self.prepare(X, strict=strict)
        n = len(frame)
        if n == 0:
            proba = np.empty((0, len(labels)), dtype=np.float64)
        else:
            reply, arrays = self._ask("predict_proba", frame)
            proba = self._checked(reply, arrays, "proba", (n, len(labels)), "predict_proba")
            if proba.dtype != np.float64 or not np.isfinite(proba).all():
                raise self._bad("predict_proba", "probabilities that are not finite numbers")
        return pd.DataFrame(proba, index=frame.index, columns=pd.Index(labels.tolist()))

    def _checked(
        self,
        reply: dict[str, Any],
        arrays: list[np.ndarray],
        kind: str,
        shape: tuple[int, ...],
        method: str,
    ) -> np.ndarray:
        if reply.get("kind") != kind or len(arrays) != 1 or arrays[0].shape != shape:
            got = [a.shape for a in arrays]
            raise self._bad(method, f"expected {kind} of shape {shape}, got {got}")
        return arrays[0]

    def _bad(self, method: str, problem: str) -> SandboxCrashError:
        self.close()
        return SandboxCrashError(self.source, method, f"it answered with {problem}")

    def __repr__(self) -> str:
        return super().__repr__().replace("<Model", "<IsolatedModel", 1)


def open_bundle(
    path: str,
    options: dict[str, Any],
    *,
    limits: Limits,
    preload: Sequence[str],
    proofs: bool = True,
) -> IsolatedModel:
    """Start a worker, run the whole load sequence of ``path`` in it, return the handle."""

    key = options.get("public_key")
    reads = [path] if not isinstance(key, str) else [path, key]

    def start() -> tuple[Worker, dict[str, Any]]:
        worker = Worker(path, limits=limits, preload=preload, proofs=proofs, reads=reads)
        try:
            reply, _ = worker.request(
                {"op": "load_bundle", "path": path, "options": options}, during="load"
            )
        except BaseException:
            worker.close()
            raise
        return worker, reply

    worker, reply = start()
    try:
        manifest = parse_manifest(str(reply.get("manifest", "")), f"{path} (from the worker)")
        raw = reply.get("classes")
        classes = _classes_array(raw) if isinstance(raw, list) else np.empty(0)
        if manifest.target.classes is not None and not isinstance(raw, list):
            raise SandboxCrashError(path, "load", "it reported no classes for a classifier")
        model = IsolatedModel(
            manifest,
            classes,
            format=str(reply.get("format", "")),
            source=path,
            opener=lambda: start()[0],
        )
    except BaseException:
        worker.close()
        raise
    model._attach(worker)
    warnings_reported = reply.get("warnings", [])
    # At most 100: a worker cannot flood the caller with warnings.
    _reemit(warnings_reported[:100] if isinstance(warnings_reported, list) else [])
    return model


class IsolatedEstimator:
    """A standalone pickle or joblib file loaded in a sandboxed worker
    (``safe_load(path, isolate=True)``): the object stays there; this handle calls it.

    ``type`` is the loaded object's class (``"sklearn.pipeline.Pipeline"``), ``classes_``,
    ``feature_names_in_`` and ``n_features_in_`` what it reported. ``X`` goes to the worker
    as columns (a DataFrame's own; an array's in order, named as ``feature_names_in_``).
    """

    def __init__(self, source: str, description: dict[str, Any], opener: Callable[[], Worker]):
        self.source = source
        self._opener = opener
        self._worker: Worker | None = None
        self.type = str(description.get("type", ""))
        self._methods = [str(m) for m in description.get("methods", []) if isinstance(m, str)]
        classes = description.get("classes")
        self.classes_ = _classes_array(classes) if isinstance(classes, list) else None
        names = description.get("feature_names_in")
        self.feature_names_in_ = (
            np.array([str(n) for n in names], dtype=object) if isinstance(names, list) else None
        )
        count = description.get("n_features_in")
        self.n_features_in_ = count if isinstance(count, int) else None

    def _attach(self, worker: Worker) -> None:
        self._worker = worker

    def close(self) -> None:
        """End the worker and remove its scratch folder."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def restart(self) -> None:
        """Load the file again in a fresh worker."""
        self.close()
        self._worker = self._opener()

    def __enter__(self) -> IsolatedEstimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def predict(self, X: Any) -> np.ndarray:
        """The object's ``predict`` on ``X``, run in the worker."""
        return self._call("predict", X)

    def predict_proba(self, X: Any) -> np.ndarray:
        """The object's ``predict_proba`` on ``X``, run in the worker."""
        return self._call("predict_proba", X)

    def decision_function(self, X: Any) -> np.ndarray:
        """The object's ``decision_function`` on ``X``, run in the worker."""
        return self._call("decision_function", X)

    def transform(self, X: Any) -> np.ndarray:
        """The object's ``transform`` on ``X``, run in the worker."""
        return self._call("transform", X)

    def _call(self, method: str, X: Any) -> np.ndarray:
        import pandas as pd

        if method not in self._methods:
            raise InvalidArgumentError(
                method, f"a method of the loaded object ({', '.join(self._methods)})", "none"
            )
        as_frame = isinstance(X, pd.DataFrame)
        frame = X if as_frame else pd.DataFrame(np.asarray(X))
        if not as_frame and self.feature_names_in_ is not None:
            if frame.shape[1] != len(self.feature_names_in_):
                raise InvalidArgumentError(
                    "X", f"{len(self.feature_names_in_)} columns", f"{frame.shape[1]}"
                )
            frame.columns = list(self.feature_names_in_)
            as_frame = True
        n = len(frame)
        if self._worker is None or not self._worker.alive:
            self.restart()
        worker = self._worker
        if worker is None:  # pragma: no cover - restart() sets it or raises
            raise SandboxCrashError(self.source, method, "no worker")
        header, arrays = _send_columns(frame)
        try:
            reply, out = worker.request(
                {"op": "call", "method": method, "frame": as_frame, **header},
                arrays,
                during=method,
            )
        except errors.ModelkeepError:
            if not worker.alive:
                self._worker = None
            raise
        if reply.get("kind") == "list":
            values = reply.get("values")
            if not isinstance(values, list) or len(values) != n:
                raise SandboxCrashError(self.source, method, "it answered with a wrong length")
            return _classes_array(values)
        if len(out) != 1 or out[0].ndim == 0 or out[0].shape[0] != n:
            raise SandboxCrashError(self.source, method, "it answered with a wrong shape")
        result: np.ndarray = out[0]
        return result

    def __repr__(self) -> str:
        return f"<IsolatedEstimator {self.type} from {self.source!r}>"


def open_file(
    path: str,
    request: dict[str, Any],
    *,
    limits: Limits,
    preload: Sequence[str],
    proofs: bool = True,
) -> IsolatedEstimator:
    """Start a worker, load the standalone file in it, return the handle."""

    def start() -> tuple[Worker, dict[str, Any]]:
        worker = Worker(path, limits=limits, preload=preload, proofs=proofs)
        try:
            reply, _ = worker.request({"op": "load_file", "path": path, **request}, during="load")
        except BaseException:
            worker.close()
            raise
        return worker, reply

    worker, reply = start()
    description = reply.get("estimator")
    handle = IsolatedEstimator(
        path, description if isinstance(description, dict) else {}, lambda: start()[0]
    )
    handle._attach(worker)
    return handle

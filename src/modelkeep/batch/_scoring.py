"""Scoring one chunk of rows: text to typed columns, validation, rejection, prediction.

Shared by the local engine and the Dask engine, so both give the same output row for row.
A chunk goes through the model's own validation (``Model.predict``; for an ONNX model its
feeds, run once for labels and probabilities); a :class:`~modelkeep.errors.SchemaError`
names the row through its :class:`~modelkeep.errors.InputProblem` records, that row is set
aside, and the rest is validated again in halves (a problem without a row is found by
halving), so a chunk with ``k`` bad rows costs about ``k log n`` extra validations, never
one per row.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, Literal, TypeGuard

import numpy as np

from modelkeep._inputs import value_error
from modelkeep.batch._errors import RejectedRowError
from modelkeep.batch._io import import_pyarrow
from modelkeep.errors import InputProblem, InvalidArgumentError, SchemaError, SchemaWarning
from modelkeep.manifest import FeatureSpec, dump_manifest

if TYPE_CHECKING:
    from modelkeep._model import Model
    from modelkeep.sandbox import IsolatedModel

__all__ = [
    "METADATA_KEYS",
    "META_COLUMNS",
    "PREDICTION",
    "PROBA_PREFIX",
    "REJECTED_COLUMNS",
    "OnError",
    "Rejection",
    "Scored",
    "Scorer",
    "manifest_sha256",
]

OnError = Literal["fail", "skip"]
PREDICTION: Final = "prediction"
PROBA_PREFIX: Final = "proba_"
#: The model columns of CSV output (Parquet output carries them as file metadata).
META_COLUMNS: Final = ("model_name", "model_version", "manifest_sha256")
#: File-metadata keys of Parquet output, in the order of :data:`META_COLUMNS`.
METADATA_KEYS: Final = (
    "modelkeep.model_name",
    "modelkeep.model_version",
    "modelkeep.manifest_sha256",
)
#: Columns a rejected-rows file adds to the row's own cells (first two before, rest after).
REJECTED_COLUMNS: Final = (
    "rejected_file",
    "rejected_row",
    "rejected_column",
    "rejected_kind",
    "rejected_expected",
    "rejected_received",
    "rejected_reason",
)


def manifest_sha256(model: Model) -> str:
    """SHA-256 of the model's manifest as written (canonical JSON, the bytes of
    ``modelkeep.json`` and what a registry records)."""
    return hashlib.sha256(dump_manifest(model.manifest).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Rejection:
    """A row set aside: its file, 1-based data row, the problem, and its cells as text."""

    file: str
    row: int
    problem: InputProblem
    values: dict[str, str | None]


@dataclass
class Scored:
    """A chunk's output: the scored rows (a pyarrow Table) and the rejected ones."""

    table: Any
    rejected: list[Rejection] = field(default_factory=list)


def _reason(problem: InputProblem) -> str:
    """The problem without the chunk-relative row its message names."""
    if problem.expected is not None and problem.received is not None:
        where = f"column {problem.column!r}: " if problem.column else ""
        return f"{where}expected {problem.expected}, got {problem.received}"
    return problem.message


class Scorer:
    """Scores chunks with one loaded model.

    ``keep``: input columns copied to the output; ``proba``: one probability column per
    business label (default: for classifiers that have probabilities); ``meta_columns``:
    repeat model name, version and manifest hash as columns (CSV output).
    """

    def __init__(
        self,
        model: Model,
        *,
        keep: Sequence[str] = (),
        proba: bool | None = None,
        meta_columns: bool = False,
    ) -> None:
        pa = import_pyarrow()
        self.model = model
        self.features: list[FeatureSpec] = model.schema
        self.names = [spec.name for spec in self.features]
        self.keep = list(keep)
        self.onnx = _is_onnx(model)
        classifier = model.manifest.target.classes is not None
        # A model in a sandboxed worker (isolate=True) keeps its estimator there: whether it
        # has probabilities is what its golden outputs recorded at save.
        isolated = _is_isolated(model)
        if self.onnx:
            has_proba = classifier
        elif _is_isolated(model):
            has_proba = model.has_probabilities
        else:
            has_proba = classifier and hasattr(model.estimator, "predict_proba")
        if proba is None:
            proba = has_proba
        elif proba and not has_proba:
            raise InvalidArgumentError(
                "proba",
                "a classifier with class probabilities",
                f"a {model.task} model" if not classifier else "a model without predict_proba",
                "Pass --no-proba (proba=False) to write predictions only.",
            )
        self.proba = bool(proba)
        self.label_values: list[Any] | None = None
        if classifier:
            classes = list(model.manifest.target.classes or ())
            labels = model.labels
            self.label_values = [labels[c] for c in classes] if labels is not None else classes
        self.prediction_type = (
            pa.float64() if self.label_values is None else pa.array(self.label_values).type
        )
        self.proba_columns = (
            [f"{PROBA_PREFIX}{label}" for label in self.label_values]
            if self.proba and self.label_values is not None
            else []
        )
        self.meta_columns = meta_columns
        manifest = model.manifest
        self.metadata = (manifest.name, str(manifest.version), manifest_sha256(model))
        produced = [PREDICTION, *self.proba_columns, *(META_COLUMNS if meta_columns else ())]
        clash = sorted(set(produced) & set(self.keep))
        if clash:
            raise InvalidArgumentError(
                "keep_columns",
                f"input columns whose names the output does not use ({', '.join(produced)})",
                ", ".join(map(repr, clash)),
                "Rename the column in the input, or do not keep it.",
            )
        self.warnings: Counter[tuple[str, str | None]] = Counter()
        self.other_warnings: dict[str, Warning] = {}
        self._sorted_keys: tuple[np.ndarray, np.ndarray] | None = None
        self._label_from_proba = (
            not self.onnx
            and not isolated
            and self.label_values is not None
            and _predicts_argmax(model.estimator)
        )

    # -------------------------------------------------------------- the output's shape

    @property
    def read_columns(self) -> list[str]:
        """The input columns scoring reads: kept ones first, then the features."""
        return list(dict.fromkeys([*self.keep, *self.names]))

    def output_schema(self, kept_types: Sequence[Any]) -> Any:
        """The output's arrow schema, given the kept columns' types."""
        pa = import_pyarrow()
        fields = [pa.field(name, kind) for name, kind in zip(self.keep, kept_types, strict=True)]
        fields.append(pa.field(PREDICTION, self.prediction_type))
        fields.extend(pa.field(name, pa.float64()) for name in self.proba_columns)
        if self.meta_columns:
            fields.extend(pa.field(name, pa.string()) for name in META_COLUMNS)
        return pa.schema(fields)

    def file_metadata(self) -> dict[str, str]:
        return dict(zip(METADATA_KEYS, self.metadata, strict=True))

    def rejected_schema(self) -> Any:
        pa = import_pyarrow()
        head, tail = REJECTED_COLUMNS[:2], REJECTED_COLUMNS[2:]
        fields = [pa.field(head[0], pa.string()), pa.field(head[1], pa.int64())]
        fields.extend(pa.field(name, pa.string()) for name in self.read_columns)
        fields.extend(pa.field(name, pa.string()) for name in tail)
        return pa.schema(fields)

    def rejected_table(self, rejected: Sequence[Rejection]) -> Any:
        pa = import_pyarrow()
        data: dict[str, list[Any]] = {
            "rejected_file": [r.file for r in rejected],
            "rejected_row": [r.row for r in rejected],
        }
        for name in self.read_columns:
            data[name] = [r.values.get(name) for r in rejected]
        data["rejected_column"] = [r.problem.column for r in rejected]
        data["rejected_kind"] = [r.problem.kind for r in rejected]
        data["rejected_expected"] = [r.problem.expected for r in rejected]
        data["rejected_received"] = [r.problem.received for r in rejected]
        data["rejected_reason"] = [r.problem.message for r in rejected]
        return pa.table(data, schema=self.rejected_schema())

    # -------------------------------------------------------------- scoring

    def score(self, table: Any, *, file: str, first_row: int, on_error: OnError) -> Scored:
        """Score ``table`` (the rows of ``file`` from data row ``first_row``, 1-based)."""
        typed, bad = self._typed(table)
        n = table.num_rows
        rejected: dict[int, InputProblem] = {}

        def reject(position: int, problem: InputProblem) -> None:
            line = first_row + position
            problem = replace(problem, row=line, message=_reason(problem))
            if on_error == "fail":
                raise RejectedRowError(file, line, problem)
            rejected[position] = problem

        for position in sorted(bad):
            reject(position, bad[position])
        keep = np.setdiff1d(np.arange(n), np.fromiter(bad, dtype=np.int64, count=len(bad)))
        pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
        if keep.size:
            self._run(typed, keep, pieces, reject)
        return Scored(
            self._output(table, pieces), self._rejections(table, rejected, file, first_row)
        )

    def _run(
        self,
        typed: Any,
        positions: np.ndarray,
        pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
        reject: Callable[[int, InputProblem], None],
    ) -> None:
        """Predict the rows at ``positions``; set aside those validation refuses."""
        sub = typed if positions.size == typed.num_rows else typed.take(positions)
        try:
            labels, proba = self._predict(sub)
        except SchemaError as exc:
            problem = next(
                (p for p in exc.problems if p.row is not None and 0 <= p.row < positions.size),
                None,
            )
            if problem is not None and problem.row is not None:
                reject(int(positions[problem.row]), problem)
                rest = np.delete(positions, problem.row)
            elif positions.size == 1:
                reject(int(positions[0]), exc.problems[0])
                return
            else:
                rest = positions
            middle = rest.size // 2
            for half in (rest[:middle], rest[middle:]):
                if half.size:
                    self._run(typed, half, pieces, reject)
            return
        pieces.append((positions, labels, proba))

    def _predict(self, sub: Any) -> tuple[np.ndarray, np.ndarray | None]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = self._predict_onnx(sub) if self.onnx else self._predict_sklearn(sub)
        # predict and predict_proba both validate: count each kind once per chunk.
        seen: set[tuple[str, str | None]] = set()
        for warning in caught:
            message = warning.message
            if isinstance(message, SchemaWarning):
                seen.add((message.kind, message.column))
            elif isinstance(message, Warning):
                self.other_warnings.setdefault(str(message), message)
        self.warnings.update(seen)
        return result

    def _predict_sklearn(self, sub: Any) -> tuple[np.ndarray, np.ndarray | None]:
        frame = sub.to_pandas()
        if self.proba and self._label_from_proba:
            # The estimator's own predict is the argmax of these probabilities: one pass.
            both = np.asarray(self.model.predict_proba(frame), dtype=np.float64)
            values = np.empty(len(self.label_values or ()), dtype=object)
            values[:] = self.label_values
            return values[np.argmax(both, axis=1)], both
        labels = np.asarray(self.model.predict(frame))
        proba = None
        if self.proba:
            proba = np.asarray(self.model.predict_proba(frame), dtype=np.float64)
        return labels, proba

    def _predict_onnx(self, sub: Any) -> tuple[np.ndarray, np.ndarray | None]:
        from modelkeep.onnx.runtime import LABEL, PROBABILITIES, VALUE

        runtime = self.model.runtime  # type: ignore[attr-defined]
        columns = {name: sub.column(name).to_numpy(zero_copy_only=False) for name in self.names}
        feeds, _ = runtime.feeds(columns)
        if self.label_values is None:
            out = runtime.run(feeds, [VALUE])
            return np.asarray(out[VALUE], dtype=np.float64).ravel(), None
        wanted = [LABEL, PROBABILITIES] if self.proba else [LABEL]
        out = runtime.run(feeds, wanted)
        values = np.empty(len(self.label_values), dtype=object)
        values[:] = self.label_values
        labels = values[self._positions(runtime, out[LABEL])]
        proba = np.asarray(out[PROBABILITIES], dtype=np.float64) if self.proba else None
        return labels, proba

    def _positions(self, runtime: Any, labels: np.ndarray) -> np.ndarray:
        """Positions in the classes of the graph's labels, vectorized (the runtime's own
        lookup goes value by value); the runtime's lookup when a label is not a class."""
        if self._sorted_keys is None:
            from modelkeep.onnx.runtime import onnx_label

            keys = np.asarray([onnx_label(c) for c in self.model.manifest.target.classes or ()])
            order = np.argsort(keys, kind="stable")
            self._sorted_keys = (keys[order], order)
        keys, order = self._sorted_keys
        flat = labels.ravel()
        found = np.clip(np.searchsorted(keys, flat), 0, len(keys) - 1)
        if flat.size and not np.array_equal(keys[found], flat):
            positions: np.ndarray = runtime.positions(labels)
            return positions
        result: np.ndarray = order[found]
        return result

    # -------------------------------------------------------------- text columns

    def _typed(self, table: Any) -> tuple[Any, dict[int, InputProblem]]:
        """The feature columns, text converted to the type each feature needs; the cells
        that cannot be converted as problems by position (first column wins)."""
        pa = import_pyarrow()
        columns = {}
        bad: dict[int, InputProblem] = {}
        for spec in self.features:
            column = table.column(spec.name)
            targets = _targets(spec, pa)
            if targets and (
                pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
            ):
                column, failed = _cast_text(column, targets, pa)
                for position, raw in failed:
                    if position not in bad:
                        error = value_error(spec.name, position, raw, spec.dtype)
                        bad[position] = error.problems[0]
            columns[spec.name] = column
        return pa.table(columns), bad

    # -------------------------------------------------------------- assembling

    def _output(
        self, table: Any, pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]
    ) -> Any:
        pa = import_pyarrow()
        if pieces:
            positions = np.concatenate([p[0] for p in pieces])
            labels = np.concatenate([p[1] for p in pieces])
        else:
            positions = np.empty(0, dtype=np.int64)
            labels = np.empty(0, dtype=object)
        n = positions.size
        arrays: list[Any] = [table.column(name).take(positions) for name in self.keep]
        arrays.append(pa.array(labels, type=self.prediction_type))
        if self.proba_columns:
            k = len(self.proba_columns)
            proba = (
                np.concatenate([p[2] for p in pieces if p[2] is not None])
                if pieces
                else np.empty((0, k))
            )
            arrays.extend(
                pa.array(np.ascontiguousarray(proba[:, j]), type=pa.float64()) for j in range(k)
            )
        if self.meta_columns:
            arrays.extend(pa.repeat(pa.scalar(value), n) for value in self.metadata)
        kept_types = [table.schema.field(name).type for name in self.keep]
        schema = self.output_schema(kept_types)
        return pa.Table.from_arrays(arrays, schema=schema)

    def _rejections(
        self, table: Any, rejected: dict[int, InputProblem], file: str, first_row: int
    ) -> list[Rejection]:
        if not rejected:
            return []
        positions = sorted(rejected)
        rows = table.select(self.read_columns).take(positions).to_pylist()
        return [
            Rejection(
                file,
                first_row + position,
                rejected[position],
                {k: None if v is None else str(v) for k, v in row.items()},
            )
            for position, row in zip(positions, rows, strict=True)
        ]


#: scikit-learn classifiers whose ``predict`` is, in their own code,
#: ``classes_.take(argmax(predict_proba(X)))``: for them one call gives both outputs.
_ARGMAX_PREDICTORS: Final = frozenset(
    {
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.ExtraTreesClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.ExtraTreeClassifier",
    }
)


def _predicts_argmax(estimator: Any) -> bool:
    """Whether the final step of ``estimator`` predicts the argmax of its probabilities."""
    final = estimator
    while getattr(final, "steps", None):  # a Pipeline: its final estimator
        final = final.steps[-1][1]
    kind = type(final)
    single_output = getattr(final, "n_outputs_", 1) == 1
    return single_output and f"{kind.__module__}.{kind.__qualname__}" in _ARGMAX_PREDICTORS


def _is_isolated(model: Model) -> TypeGuard[IsolatedModel]:
    from modelkeep.sandbox import IsolatedModel

    return isinstance(model, IsolatedModel)


def _is_onnx(model: Model) -> bool:
    from modelkeep.onnx.model import OnnxModel

    return isinstance(model, OnnxModel)


def _targets(spec: FeatureSpec, pa: Any) -> list[Any]:
    """The arrow types to try, in order, for a text column of ``spec``; none: keep text."""
    if spec.dtype == "integer":
        return [pa.int64(), pa.float64()]  # "3.0" is a whole number; validation decides
    if spec.dtype == "float":
        return [pa.float64()]
    if spec.dtype == "boolean":
        return [pa.bool_()]
    if spec.dtype == "category" and spec.categories:
        if all(isinstance(c, int) and not isinstance(c, bool) for c in spec.categories):
            return [pa.int64(), pa.float64()]
        if all(isinstance(c, int | float) and not isinstance(c, bool) for c in spec.categories):
            return [pa.float64()]
    return []


def _cast_text(column: Any, targets: Sequence[Any], pa: Any) -> tuple[Any, list[tuple[int, str]]]:
    """``column`` (text) as the first of ``targets`` it converts to whole; otherwise as the
    last, with the cells that do not convert set to null and returned (position, text)."""
    compute = pa.compute
    trimmed = compute.utf8_trim_whitespace(column)
    for target in targets:
        try:
            return compute.cast(trimmed, target), []
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    target = targets[-1]
    values = trimmed.to_pylist()
    raw = column.to_pylist()
    failed: list[tuple[int, str]] = []
    for position, value in enumerate(values):
        if value is None:
            continue
        try:
            compute.cast(pa.array([value], pa.string()), target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            failed.append((position, raw[position]))
            values[position] = None
    return compute.cast(pa.array(values, pa.string()), target), failed

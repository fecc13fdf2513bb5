"""``drift()``: one streaming pass over the current data, judged against the profile."""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from modelkeep._profile import PREDICTION, numeric_values, output_key, text_values
from modelkeep.errors import InvalidArgumentError, InvalidChoiceError
from modelkeep.manifest import Manifest, ReferenceProfile
from modelkeep.monitor._accumulate import WindowCounts
from modelkeep.monitor._errors import NoReferenceProfileError
from modelkeep.monitor._report import (
    DriftReport,
    FeatureDrift,
    Thresholds,
    WindowResult,
    column_drift,
    performance,
)
from modelkeep.monitor._sources import Source, open_source

if TYPE_CHECKING:
    import pandas as pd

    from modelkeep._model import Model

__all__ = ["Progress", "drift", "parse_window"]

Progress = Callable[[int, "int | None"], None]
OutputsMode = Literal["auto", "data", "model", "none"]
_OUTPUT_MODES = ("auto", "data", "model", "none")
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_WINDOW = re.compile(r"^\s*(\d+)\s*(s|sec|m|min|h|d|w)\s*$")
_NS = 1_000_000_000


def parse_window(text: str) -> int:
    """``"1h"``, ``"30min"``, ``"1d"``, ``"7d"``, ``"1w"`` as nanoseconds.

    Raises:
        InvalidArgumentError: anything else.
    """
    found = _WINDOW.match(text) if isinstance(text, str) else None
    if found is None or int(found[1]) == 0:
        raise InvalidArgumentError(
            "window", "a positive length such as '1h', '30min', '1d' or '7d'", repr(text)
        )
    return int(found[1]) * _UNITS[found[2]] * _NS


def _moment(parameter: str, value: datetime | str | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise InvalidArgumentError(
            parameter, "a datetime or an ISO 8601 date such as '2026-01-31T12:00:00'", repr(value)
        )
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp() * 1_000_000) * 1000


@dataclass
class _Reference:
    profile: ReferenceProfile
    manifest: Manifest | None
    source: str
    model: Model | None
    loader: Callable[[], Model] | None

    def get_model(self) -> Model | None:
        if self.model is None and self.loader is not None:
            self.model = self.loader()
        return self.model


def _reference(model_or_ref: Any) -> _Reference:
    from modelkeep._model import Model

    if isinstance(model_or_ref, ReferenceProfile):
        return _Reference(model_or_ref, None, "a reference profile", None, None)
    if isinstance(model_or_ref, Manifest):
        manifest = model_or_ref
        source, model, loader = f"{manifest.name} {manifest.version}", None, None
    elif isinstance(model_or_ref, Model):
        manifest = model_or_ref.manifest
        source, model, loader = f"{manifest.name} {manifest.version}", model_or_ref, None
    elif isinstance(model_or_ref, str | os.PathLike):
        from modelkeep._load import locate, resolve_source
        from modelkeep.manifest import read_manifest
        from modelkeep.registry.refs import Reference

        found = resolve_source(model_or_ref)
        path = locate(found).path if isinstance(found, Reference) else Path(found)
        manifest = read_manifest(path)
        source, model = os.fspath(model_or_ref), None

        def loader() -> Model:
            import modelkeep

            return modelkeep.load(model_or_ref)

    else:
        raise InvalidArgumentError(
            "model_or_ref",
            "a Model, a Manifest, a ReferenceProfile, a bundle path or a registry reference",
            type(model_or_ref).__name__,
        )
    if manifest.profile is None:
        raise NoReferenceProfileError(source)
    return _Reference(manifest.profile, manifest, source, model, loader)


def drift(
    model_or_ref: Any,
    current: Any,
    *,
    labels: Any = None,
    window: str | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    time_column: str | None = None,
    outputs: OutputsMode = "auto",
    thresholds: Thresholds | None = None,
    progress: Progress | None = None,
) -> DriftReport:
    """Measure ``current`` against the reference profile in one pass; return a report.

    Args:
        model_or_ref: a loaded :class:`~modelkeep.Model`, a bundle path, a registry
            reference (``"churn@production"``), a :class:`~modelkeep.Manifest` or a
            :class:`~modelkeep.manifest.ReferenceProfile`.
        current: a DataFrame, a ``.csv`` or ``.parquet`` file, a directory of them, or a
            prediction-log directory (``modelkeep serve --log``). Read in chunks: memory
            stays bounded by the profile's size, not the data's.
        labels: the true outcomes, for performance: the name of a column of ``current``,
            or a DataFrame / ``.csv`` / ``.parquet`` file joined on ``request_id`` when both
            hold one, else on row order.
        window: ``"1h"``, ``"1d"``, ``"7d"`` ...: one result per window of the time column.
        since, until: keep rows with ``since <= time < until`` (datetimes or ISO 8601).
        time_column: the column holding each row's time (default ``time`` when present).
        outputs: drift of the model's outputs from ``"data"`` (a log's outputs, or
            ``prediction``/``probability:<label>`` columns), from the ``"model"`` run on the
            rows, ``"auto"`` (the data's when present, else the model's when a model can be
            loaded), or ``"none"``.
        thresholds: a :class:`Thresholds` (PSI 0.1/0.25, dataset share 0.5, ...).
        progress: called with (rows read, rows in all when known) after each chunk.

    Raises:
        NoReferenceProfileError: the bundle has no reference profile.
        InvalidArgumentError, InvalidChoiceError: a bad argument (exit status 2).
        and the errors of reading the data or loading the model.

    Example:
        >>> report = drift("churn_model", "traffic/2026-03.parquet", window="1d")
        >>> report.drifted, report.drifted_features
        (True, ['monthly_charges'])
    """
    limits = thresholds if thresholds is not None else Thresholds()
    if outputs not in _OUTPUT_MODES:
        raise InvalidChoiceError(str(outputs), _OUTPUT_MODES, "outputs")
    width = parse_window(window) if window is not None else None
    start = _moment("since", since)
    end = _moment("until", until)
    ref = _reference(model_or_ref)
    source = open_source(current)
    run = _Run(ref, source, limits, width, start, end, time_column, outputs, labels)
    return run.execute(progress)


class _Run:
    """The state of one pass: windows of counts, the label cursor, the output decision."""

    def __init__(
        self,
        ref: _Reference,
        source: Source,
        thresholds: Thresholds,
        width: int | None,
        start: int | None,
        end: int | None,
        time_column: str | None,
        outputs: OutputsMode,
        labels: Any,
    ) -> None:
        self.ref = ref
        self.source = source
        self.thresholds = thresholds
        self.width = width
        self.start = start
        self.end = end
        self.time_column = time_column
        self.outputs = outputs
        self.profile = ref.profile
        manifest = ref.manifest
        self.dtypes = {f.name: f.dtype for f in manifest.features} if manifest else {}
        self.task = manifest.task if manifest else "binary"
        self.label_map = manifest.label_map() if manifest else None
        classes = manifest.target.classes if manifest and manifest.target.classes else None
        self.classes = [output_key(c, self.label_map) for c in classes] if classes else None
        self.positive = self.classes[-1] if self.classes and self.task == "binary" else None
        self.windows: dict[int | None, WindowCounts] = {}
        self.notes: list[str] = []
        self.unscored = 0
        self.unscored_reason: str | None = None
        self.label_column: str | None = None
        self.label_table: pd.Series | None = None
        self.label_by_id = False
        self.row_offset = 0
        self.seen_ids: dict[Any, int] = {}
        self.output_source: str | None = None  # "data", "model" or None
        self._labels(labels)

    # ------------------------------------------------------------------------ labels

    def _labels(self, labels: Any) -> None:
        import pandas as pd

        if labels is None:
            return
        if isinstance(labels, str) and not os.path.exists(labels) and "/" not in labels:
            self.label_column = labels
            return
        if isinstance(labels, str | os.PathLike):
            from modelkeep._conversion import read_validation

            try:
                table = read_validation(labels)
            except InvalidChoiceError as exc:
                raise InvalidChoiceError(exc.name, exc.known, "labels file type") from exc
        elif isinstance(labels, pd.DataFrame):
            table = labels
        elif isinstance(labels, pd.Series | np.ndarray | list):
            table = pd.DataFrame({"label": np.asarray(labels, dtype=object)})
        else:
            raise InvalidArgumentError(
                "labels",
                "a column name, a DataFrame, or a .csv or .parquet file of labels",
                type(labels).__name__,
            )
        columns = [c for c in table.columns if c != "request_id"]
        target = self.ref.manifest.target.name if self.ref.manifest else None
        if len(columns) == 1:
            column = columns[0]
        elif target in columns:
            column = str(target)
        elif "label" in columns:
            column = "label"
        else:
            raise InvalidArgumentError(
                "labels",
                "one label column (besides request_id), or one named 'label'"
                + (f" or {target!r}" if target else ""),
                f"columns {', '.join(map(repr, map(str, columns)))}",
            )
        values = table[column].reset_index(drop=True)
        if "request_id" in table.columns:
            ids = table["request_id"].astype(str).reset_index(drop=True)
            occurrence = ids.groupby(ids).cumcount()
            values.index = pd.MultiIndex.from_arrays([ids, occurrence])
            self.label_by_id = True
        self.label_table = values

    def _truth(self, chunk: pd.DataFrame) -> pd.Series | None:
        """This chunk's labels (before any row is filtered out), or None."""
        import pandas as pd

        rows = len(chunk)
        offset = self.row_offset
        self.row_offset += rows
        if self.label_column is not None:
            if self.label_column not in chunk.columns:
                raise InvalidArgumentError(
                    "labels",
                    "a column of the current data, or a labels file",
                    f"{self.label_column!r}, which is neither",
                )
            return chunk[self.label_column].reset_index(drop=True)
        if self.label_table is None:
            return None
        if self.label_by_id and "request_id" in chunk.columns:
            ids = chunk["request_id"].astype(str).reset_index(drop=True)
            occurrence = ids.groupby(ids).cumcount().to_numpy()
            occurrence = occurrence + ids.map(self.seen_ids).fillna(0).astype(np.int64).to_numpy()
            for key, number in ids.value_counts(sort=False).items():
                self.seen_ids[key] = self.seen_ids.get(key, 0) + int(number)
            index = pd.MultiIndex.from_arrays([ids, occurrence])
            return self.label_table.reindex(index).reset_index(drop=True)
        if self.label_by_id:
            return self.label_table.iloc[offset : offset + rows].reset_index(drop=True)
        part = self.label_table.iloc[offset : offset + rows].reset_index(drop=True)
        return part.reindex(range(rows))

    # ----------------------------------------------------------------------- outputs

    def _decide_outputs(self, chunk: pd.DataFrame, labelled: bool) -> None:
        if self.output_source is not None or not self.profile.outputs:
            return
        in_data = PREDICTION in chunk.columns
        mode = self.outputs
        if mode == "data" and not in_data:
            raise InvalidArgumentError(
                "outputs",
                "current data holding the model's outputs (a prediction log, or a "
                f"{PREDICTION!r} column)",
                "data without them",
            )
        if mode == "data" or (mode == "auto" and in_data):
            self.output_source = "data"
        elif mode == "model" or (
            mode == "auto" and (labelled or self.ref.loader or self.ref.model)
        ):
            if self.ref.get_model() is None:
                raise InvalidArgumentError(
                    "outputs", "a bundle or a Model to compute outputs with", "a profile only"
                )
            self.output_source = "model"
        else:
            self.output_source = "none"

    def _outputs(
        self, chunk: pd.DataFrame
    ) -> tuple[pd.Series | None, dict[str, np.ndarray] | None]:
        """Predicted keys and class probabilities of the chunk's rows."""
        import pandas as pd

        from modelkeep._profile import probability_name

        if self.output_source == "data":
            predicted = (
                text_values(chunk[PREDICTION].reset_index(drop=True))
                if self.task != "regression"
                else chunk[PREDICTION].reset_index(drop=True)
            )
            probabilities = {}
            for name in self.classes or []:
                column = probability_name(name)
                if column in chunk.columns:
                    probabilities[name] = numeric_values(chunk[column])
            return predicted, probabilities or None
        if self.output_source != "model":
            return None, None
        model = self.ref.get_model()
        if model is None:  # decided above; kept for the type checker
            return None, None
        from modelkeep.errors import SchemaError, SchemaWarning

        rows = chunk[[f for f in self.dtypes if f in chunk.columns]]
        with warnings.catch_warnings():
            # Live data is expected to be unusual: that is what the report measures.
            warnings.simplefilter("ignore", SchemaWarning)
            try:
                if self.task == "regression":
                    values = np.asarray(model.predict(rows), dtype=np.float64)
                    return pd.Series(values), None
                try:
                    proba = model.predict_proba(rows)
                except InvalidArgumentError:  # a classifier without probabilities
                    return text_values(pd.Series(model.predict(rows))), None
            except SchemaError as exc:
                # Rows the model refuses still count for feature drift; their outputs
                # (and performance) are left out, and the report says how many and why.
                self.unscored += len(rows)
                if self.unscored_reason is None:
                    self.unscored_reason = str(exc)
                return None, None
        names = [str(c) for c in proba.columns]
        matrix = proba.to_numpy(dtype=np.float64)
        predicted = pd.Series(np.asarray(names, dtype=object)[matrix.argmax(axis=1)], dtype=object)
        return predicted, {n: matrix[:, i] for i, n in enumerate(names)}

    # --------------------------------------------------------------------------- pass

    def _window(self, key: int | None) -> WindowCounts:
        counts = self.windows.get(key)
        if counts is None:
            counts = WindowCounts(self.profile.features, self.profile.outputs, self.classes)
            self.windows[key] = counts
        return counts

    def _times(self, chunk: pd.DataFrame) -> np.ndarray | None:
        import pandas as pd

        column = self.time_column
        if column is None and "time" in chunk.columns:
            column = "time"
        needed = self.width is not None or self.start is not None or self.end is not None
        if column is None or column not in chunk.columns:
            if needed:
                raise InvalidArgumentError(
                    "time_column" if self.time_column else "window/since/until",
                    "current data with a time column ('time', or the one named by "
                    "time_column / --time-column)",
                    f"no column {column or 'time'!r}",
                )
            return None
        stamps = pd.to_datetime(chunk[column], utc=True, errors="coerce")
        naive = stamps.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
        return naive.view(np.int64)

    def execute(self, progress: Progress | None) -> DriftReport:

        names = [f.name for f in self.profile.features]
        wanted = [*names, self.time_column or "time"]
        if self.label_by_id:
            wanted.append("request_id")
        if self.outputs != "none":  # output columns are read only when they are measured
            wanted += [PREDICTION, *(f.name for f in self.profile.outputs)]
        if self.label_column:
            wanted.append(self.label_column)
        wanted = list(dict.fromkeys(wanted))
        read = 0
        for chunk in self.source.chunks(wanted):
            read += len(chunk)
            chunk = chunk.reset_index(drop=True)
            truth = self._truth(chunk)
            times = self._times(chunk)
            keep = np.ones(len(chunk), dtype=bool)
            if times is not None:
                if self.start is not None:
                    keep &= times >= self.start
                if self.end is not None:
                    keep &= times < self.end
            if not keep.all():
                chunk = chunk.loc[keep].reset_index(drop=True)
                truth = truth.loc[keep].reset_index(drop=True) if truth is not None else None
                times = times[keep] if times is not None else None
            if len(chunk):
                self._decide_outputs(chunk, truth is not None)
                self._add(chunk, truth, times)
            if progress is not None:
                progress(read, self.source.rows)
        if not self.windows:
            self._window(None)
        total = WindowCounts(self.profile.features, self.profile.outputs, self.classes)
        for counts in self.windows.values():
            total.merge(counts)
        windows = []
        if self.width is not None:
            for key in sorted(k for k in self.windows if k is not None):
                windows.append(self._result(self.windows[key], key))
        overall = self._result(total, None)
        if self.output_source in (None, "none") and self.profile.outputs:
            self.notes.append("output drift not measured (no outputs in the data, no model)")
        if self.unscored:
            self.notes.append(
                f"{self.unscored:,} rows in chunks the model refused were left out of output "
                f"drift and performance; the first refusal: {self.unscored_reason}"
            )
        manifest = self.ref.manifest
        return DriftReport(
            reference={
                "source": self.ref.source,
                "name": manifest.name if manifest else None,
                "version": manifest.version if manifest else None,
                "rows": self.profile.rows,
            },
            source=self.source.description,
            rows=total.rows,
            features=overall.features,
            outputs=overall.outputs,
            performance=overall.performance,
            windows=windows,
            drifted_share=overall.drifted_share,
            dataset_drift=overall.dataset_drift,
            output_drift=any(o.drifted for o in overall.outputs),
            thresholds=self.thresholds,
            window=None if self.width is None else _window_text(self.width),
            notes=self.notes,
        )

    def _add(self, chunk: pd.DataFrame, truth: pd.Series | None, times: np.ndarray | None) -> None:
        predicted, probabilities = self._outputs(chunk)
        if self.width is None or times is None:
            groups: list[tuple[int | None, np.ndarray | None]] = [(None, None)]
        else:
            keys = np.where(times == np.iinfo(np.int64).min, 0, times // self.width * self.width)
            groups = [(int(k), keys == k) for k in np.unique(keys)]
        for key, mask in groups:
            part = chunk if mask is None else chunk.loc[mask]
            counts = self._window(key)
            counts.rows += len(part)
            self._add_columns(counts, part)
            if predicted is not None:
                self._add_outputs(counts, predicted, probabilities, mask)
                if truth is not None:
                    self._add_performance(counts, truth, predicted, probabilities, mask)

    def _add_columns(self, counts: WindowCounts, part: pd.DataFrame) -> None:
        import pandas as pd

        for name, column in counts.features.items():
            values = part[name] if name in part.columns else pd.Series([None] * len(part))
            if column.reference.kind == "numeric":
                column.add_numbers(numeric_values(values, self.dtypes.get(name, "float")))
            else:
                column.add_text(values)

    def _add_outputs(
        self,
        counts: WindowCounts,
        predicted: pd.Series,
        probabilities: dict[str, np.ndarray] | None,
        mask: np.ndarray | None,
    ) -> None:
        from modelkeep._profile import probability_name

        chosen = predicted if mask is None else predicted.loc[mask]
        for name, column in counts.outputs.items():
            if name == PREDICTION:
                if column.reference.kind == "numeric":
                    column.add_numbers(numeric_values(chosen))
                else:
                    column.add_text(chosen)
                continue
            for label, values in (probabilities or {}).items():
                if probability_name(label) == name:
                    column.add_numbers(values if mask is None else values[mask])

    def _add_performance(
        self,
        counts: WindowCounts,
        truth: pd.Series,
        predicted: pd.Series,
        probabilities: dict[str, np.ndarray] | None,
        mask: np.ndarray | None,
    ) -> None:
        labels = truth if mask is None else truth.loc[mask]
        given = labels.notna().to_numpy()
        chosen = predicted if mask is None else predicted.loc[mask]
        if self.task == "regression":
            counts.performance.add_regression(
                numeric_values(labels)[given], numeric_values(chosen)[given]
            )
            return
        keys = [output_key(v, self.label_map) for v in labels.loc[given].tolist()]
        probs = None
        if probabilities:
            probs = {n: (v if mask is None else v[mask])[given] for n, v in probabilities.items()}
        counts.performance.add(keys, chosen.loc[given].tolist(), probs)

    def _result(self, counts: WindowCounts, key: int | None) -> WindowResult:
        features: list[FeatureDrift] = [
            column_drift(c, self.thresholds) for c in counts.features.values()
        ]
        outputs: list[FeatureDrift] = []
        if self.output_source in ("data", "model"):
            outputs = [column_drift(c, self.thresholds) for c in counts.outputs.values()]
        judged = [f for f in features if f.rows]
        share = sum(f.drifted for f in judged) / len(judged) if judged else 0.0
        perf = None
        if counts.performance.rows or (self.label_column or self.label_table is not None):
            recorded = self.ref.manifest.metrics if self.ref.manifest else {}
            perf = performance(
                counts.performance, dict(recorded), self.task, self.positive, self.thresholds
            )
        return WindowResult(
            start=_iso(key) if key is not None else None,
            end=_iso(key + self.width) if key is not None and self.width else None,
            rows=counts.rows,
            features=features,
            outputs=outputs,
            performance=perf,
            drifted_share=round(share, 6),
            dataset_drift=bool(judged) and share >= self.thresholds.dataset,
        )


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / _NS, timezone.utc).isoformat().replace("+00:00", "Z")


def _window_text(width: int) -> str:
    seconds = width // _NS
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

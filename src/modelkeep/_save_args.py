"""save()'s argument checks: everything that can refuse a save before a byte is written.

Each check raises the error that names the argument and what it expected; ``save()``
(``bundle.py``) calls them in order, so a save that would fail says so before the model
is serialized.
"""

from __future__ import annotations

import math
import pickle
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelkeep._formats import available_formats
from modelkeep._inputs import plain_value
from modelkeep._reader import read_manifest
from modelkeep.errors import (
    BundleExistsError,
    BundleLayoutError,
    InvalidArgumentError,
    InvalidChoiceError,
    LabelMapError,
    ManifestError,
    NotFittedModelError,
    SampleMismatchError,
    UnknownFormatError,
)
from modelkeep.manifest import MANIFEST_NAME, LabelEntry, Manifest, Scalar, Target, Task

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "check_fitted",
    "check_formats",
    "check_golden_rows",
    "check_importable",
    "check_metrics",
    "check_name",
    "existing_bundle",
    "infer_task",
    "resolve_version",
    "sample_frame",
    "target_info",
]


def check_name(name: Any) -> None:
    """``name`` must be a non-empty string."""
    if not name or not isinstance(name, str):
        raise InvalidChoiceError(repr(name), ["a non-empty string"], "name")


def check_golden_rows(golden_rows: Any) -> None:
    """``golden_rows`` must be a whole number >= 0 (not a bool)."""
    if isinstance(golden_rows, bool) or not isinstance(golden_rows, int) or golden_rows < 0:
        raise InvalidChoiceError(repr(golden_rows), ["an integer >= 0"], "golden_rows")


def check_fitted(model: Any) -> None:
    """``model`` must be a fitted scikit-learn estimator with ``predict()``."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not hasattr(model, "predict"):
        raise InvalidChoiceError(
            type(model).__name__, ["a fitted estimator with predict()"], "model"
        )
    try:
        check_is_fitted(model)
    except NotFittedError as exc:
        raise NotFittedModelError(type(model).__name__) from exc
    except TypeError as exc:  # not an estimator at all
        raise InvalidChoiceError(
            type(model).__name__, ["a fitted scikit-learn estimator"], "model"
        ) from exc


class _Unimportable(Exception):
    def __init__(self, obj: Any) -> None:
        self.obj = obj


class _ImportCheck(pickle.Pickler):
    """Walks the model as pickling would; stops at a class or function no import can find."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type | types.FunctionType) and _import_problem(obj):
            raise _Unimportable(obj)
        return NotImplemented


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


def _import_problem(obj: Any) -> str:
    """Why ``obj`` (a class or function) cannot be imported by name elsewhere, or ""."""
    qualname = getattr(obj, "__qualname__", "")
    module = getattr(obj, "__module__", None)
    what = "class" if isinstance(obj, type) else "function"
    if "<lambda>" in qualname:
        return "a lambda, which has no name to import"
    if "<locals>" in qualname:
        return f"a {what} defined inside a function, which no import can reach"
    if module == "__main__":
        return f"a {what} defined in __main__, which is a different module in every process"
    return ""


def check_importable(model: Any) -> None:
    """Refuse a model holding a class or function another process cannot import by name.

    Every format stores classes and functions by module and name, and loading imports
    them; a lambda, a function or class defined inside a function, or one defined in the
    running script (``__main__``) would save here and fail to load anywhere else. Pickling
    into nothing (out-of-band buffers dropped) visits every object the formats will.
    """
    checker = _ImportCheck(_Discard(), protocol=5, buffer_callback=lambda _: None)
    try:
        checker.dump(model)
    except _Unimportable as found:
        obj = found.obj
        name = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}"
        raise InvalidArgumentError(
            "model",
            "classes and functions that another process can import by name",
            f"{name!r}, {_import_problem(obj)}",
            "A bundle refers to code by module and name; define it at the top level of an "
            "importable module (not the script you run, not inside a function), import it "
            "from there, and fit again.",
        ) from None
    except Exception:  # not picklable at all: the format's dump says why
        return


def check_formats(formats: Sequence[str]) -> list[str]:
    """The formats to write, deduplicated in order: known ones, one per family."""
    if isinstance(formats, str):
        formats = (formats,)
    names = list(dict.fromkeys(formats))
    if not names:
        raise InvalidChoiceError("()", available_formats(), "formats (at least one)")
    for fmt in names:
        if fmt not in available_formats():
            raise UnknownFormatError(fmt, available_formats(), context="formats")
    # "joblib" and "joblib:zlib" would both write artifacts/pipeline.joblib.
    family = {n: n.partition(":")[0] for n in names}
    for fmt in names:
        same = [n for n in names if family[n] == family[fmt]]
        if len(same) > 1:
            raise InvalidChoiceError(
                same[1], [same[0]], f"formats (one {family[fmt]} artifact per bundle)"
            )
    return names


def sample_frame(model: Any, sample: Any, feature_names: Sequence[str] | None) -> pd.DataFrame:
    """``sample`` as a DataFrame in the model's column order, checked against the model."""
    import pandas as pd

    if isinstance(sample, pd.DataFrame):
        frame = sample
        if feature_names is not None and list(feature_names) != list(frame.columns):
            raise SampleMismatchError(
                "feature_names disagree with the sample's columns",
                missing=set(feature_names) - set(frame.columns),
                unexpected=set(frame.columns) - set(feature_names),
            )
    else:
        array = np.asarray(sample)
        if array.ndim != 2:
            raise SampleMismatchError(
                f"sample: expected a DataFrame or a 2-D array, got {type(sample).__name__} "
                f"with {array.ndim} dimension(s)"
            )
        if feature_names is None:
            raise SampleMismatchError(
                "sample: a 2-D array needs feature_names=[...] naming its columns in order"
            )
        if len(feature_names) != array.shape[1]:
            raise SampleMismatchError(
                f"feature_names: expected {array.shape[1]} names (one per sample column), "
                f"got {len(feature_names)}"
            )
        frame = pd.DataFrame(array, columns=list(feature_names))
    if len(frame) == 0:
        raise SampleMismatchError("sample: expected at least one row, got 0")
    fitted_names = getattr(model, "feature_names_in_", None)
    if fitted_names is not None:
        fitted = [str(n) for n in fitted_names]
        columns = [str(c) for c in frame.columns]
        if set(fitted) != set(columns):
            raise SampleMismatchError(
                "sample's columns disagree with the model's feature_names_in_",
                missing=set(fitted) - set(columns),
                unexpected=set(columns) - set(fitted),
            )
        if fitted != columns:
            frame = frame[fitted]
    n_in = getattr(model, "n_features_in_", None)
    if isinstance(n_in, int) and n_in != frame.shape[1]:
        raise SampleMismatchError(
            f"sample: expected {n_in} columns (the model's n_features_in_), got {frame.shape[1]}"
        )
    return frame


def infer_task(model: Any) -> tuple[Task, list[Scalar] | None]:
    """The model's task and, for a classifier, its classes as plain values."""
    from sklearn.base import is_classifier, is_regressor

    classes = getattr(model, "classes_", None)
    if is_classifier(model) or (classes is not None and not is_regressor(model)):
        if classes is None or (isinstance(classes, list) and classes and np.ndim(classes[0])):
            raise InvalidChoiceError(
                type(model).__name__, ["a single-output classifier with classes_"], "model"
            )
        values = [_scalar(c) for c in np.asarray(classes).tolist()]
        return ("binary" if len(values) == 2 else "multiclass"), values
    if is_regressor(model):
        return "regression", None
    raise InvalidChoiceError(type(model).__name__, ["a classifier or a regressor"], "model")


def _scalar(value: Any) -> Scalar:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | float | str):
        return value
    raise InvalidChoiceError(
        repr(value), ["class values that are numbers, strings or booleans"], "model.classes_"
    )


def target_info(
    classes: list[Scalar] | None, labels: Mapping[Any, str] | None, task: Task
) -> Target:
    """The manifest's target: the classes and, with ``labels``, the label of each."""
    if classes is None:
        if labels is not None:
            raise InvalidChoiceError("labels=...", ["no labels for a regression model"], "labels")
        return Target()
    if labels is None:  # predictions are then the classes themselves, with their type
        return Target(classes=classes)
    keys = [_scalar(k) for k in labels]
    if sorted(map(repr, keys)) != sorted(map(repr, classes)) or len(keys) != len(classes):
        raise LabelMapError(classes, keys)
    for key, label in labels.items():
        if not isinstance(label, str) or not label:
            raise InvalidChoiceError(repr(label), ["a non-empty string"], f"labels[{key!r}]")
    if len(set(labels.values())) != len(labels):
        raise InvalidChoiceError(
            repr(list(labels.values())), ["a different label for each class"], "labels"
        )
    by_key = {_scalar(k): v for k, v in labels.items()}
    return Target(classes=classes, labels=[LabelEntry(value=c, label=by_key[c]) for c in classes])


def check_metrics(metrics: Mapping[str, float] | None) -> dict[str, float]:
    """``metrics`` as name -> finite float."""
    checked: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        if not isinstance(key, str):
            raise InvalidChoiceError(repr(key), ["string metric names"], "metrics")
        number = plain_value(value)
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise InvalidChoiceError(repr(value), ["a number"], f"metrics[{key!r}]")
        if not math.isfinite(number):
            raise InvalidChoiceError(repr(value), ["a finite number"], f"metrics[{key!r}]")
        checked[key] = float(number)
    return checked


def existing_bundle(target: Path, overwrite: bool) -> Manifest | None:
    """The manifest of the bundle ``save()`` would replace (None: none, or unreadable).

    Raises:
        BundleExistsError: something is at ``target`` and ``overwrite`` is False, or it
            is not a bundle (never deleted, whatever ``overwrite`` says).
    """
    if not target.exists() and not target.is_symlink():
        return None
    if not overwrite:
        raise BundleExistsError(str(target))
    if target.is_symlink() or not (target / MANIFEST_NAME).is_file():
        # Never delete something that is not a bundle, whatever overwrite says.
        raise BundleExistsError(str(target) + " (and it is not a modelkeep bundle)")
    try:
        return read_manifest(target)
    except (ManifestError, BundleLayoutError):
        return None  # only its version is wanted; the whole directory is replaced anyway


def resolve_version(version: str | int | None, previous: Manifest | None) -> str:
    """The version to record: as given, else the previous number + 1, else ``"1"``."""
    if version is not None:
        if isinstance(version, bool) or not str(version).strip():
            raise InvalidChoiceError(repr(version), ["a non-empty string or number"], "version")
        return str(version)
    if previous is not None and previous.version.isdigit():
        return str(int(previous.version) + 1)
    return "1"

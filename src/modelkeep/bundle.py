"""save() and load(): the bundle on disk, written atomically and read back checked.

A bundle is a directory::

    modelkeep.json          the manifest (modelkeep.manifest.Manifest), canonical JSON
    artifacts/pipeline.*    one file per format, each hashed in the manifest
    model.sig               optional signature over every file (modelkeep.signing.sign);
                            save() never writes one, so saving over a bundle unsigns it
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import io
import math
import os
import pickle
import re
import shutil
import time
import types
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelkeep._claims import check_claims
from modelkeep._modes import EnvMode as EnvMode  # re-exported: conversion imports it here
from modelkeep._reader import BundleReader as _BundleReader
from modelkeep._reader import Replaced as _Replaced
from modelkeep._reader import open_bundle
from modelkeep._version import __version__
from modelkeep.environment import capture_environment, compare_environment
from modelkeep.errors import (
    ArtifactFormatError,
    ArtifactSkippedWarning,
    BundleExistsError,
    BundleLayoutError,
    BundleNotFoundError,
    BundleWriteError,
    ConversionError,
    EnvironmentMismatchError,
    EnvironmentMismatchWarning,
    InvalidArgumentError,
    InvalidChoiceError,
    LabelMapError,
    ManifestError,
    ModelkeepError,
    NotFittedModelError,
    SampleMismatchError,
    SignatureError,
    UnknownFormatError,
)
from modelkeep.formats import available_formats, get_format
from modelkeep.formats.base import DumpContext, ServingFormat
from modelkeep.integrity import fingerprint_frame, sha256_stream
from modelkeep.manifest import (
    MANIFEST_NAME,
    Artifact,
    DataInfo,
    LabelEntry,
    Manifest,
    Scalar,
    Target,
    Task,
    dump_manifest,
)
from modelkeep.model import Model
from modelkeep.safety.policy import TrustPolicy
from modelkeep.safety.sniff import content_of, sniff
from modelkeep.signing import SIGNATURE_NAME, VerifiedSignature, check_signature

if TYPE_CHECKING:
    import pandas as pd

    from modelkeep.onnx.report import ParityThresholds
    from modelkeep.onnx.runtime import SessionOptions

# pandas, the schema and the golden samples are imported where a model is saved or
# replayed: loading an ONNX artifact must not need pandas (or scikit-learn) installed.

__all__ = ["Check", "load", "save", "verify"]

_ENV_MODES = ("warn", "strict", "ignore")
_ARTIFACTS = "artifacts"


# --------------------------------------------------------------------------------- save


def save(
    model: Any,
    path: str | os.PathLike[str],
    *,
    sample: Any,
    name: str,
    version: str | int | None = None,
    labels: Mapping[Any, str] | None = None,
    metrics: Mapping[str, float] | None = None,
    data_version: str | None = None,
    description: str | None = None,
    tags: Sequence[str] | None = None,
    formats: Sequence[str] = ("skops",),
    golden_rows: int = 20,
    overwrite: bool = False,
    feature_names: Sequence[str] | None = None,
    parity: ParityThresholds | None = None,
    force: bool = False,
) -> Manifest:
    """Save a fitted model as a bundle directory at ``path``; return its manifest.

    Args:
        model: a fitted scikit-learn estimator or pipeline (preprocessing included).
        path: the bundle directory to create.
        sample: training data (or rows of it): a DataFrame, or a 2-D array with
            ``feature_names``. The feature schema, golden samples and data fingerprint come
            from it.
        name: the model's name.
        version: recorded version; default 1 for a new path, the previous version + 1 when
            overwriting a bundle whose version is a number.
        labels: model output -> business label, e.g. ``{0: "No Churn", 1: "Churn"}``; its
            keys must be exactly the model's classes. Default: no label map; the loaded
            model predicts the classes themselves (``1``, not ``"1"``).
        metrics: name -> number, e.g. ``{"f1": 0.71, "roc_auc": 0.86}``.
        data_version: which data trained the model, e.g. ``"customer_data_2026_Q1"``.
        description, tags: free text and labels for people.
        formats: artifact formats to write; ``"skops"`` by default. ``"onnx"`` converts the
            model and writes it only if it passes its parity check against the original
            (on the golden samples, ``sample`` and generated probes; needs the ``[onnx]``
            extra).
        golden_rows: how many rows of ``sample`` to store with their outputs (0: none).
        overwrite: replace an existing bundle at ``path`` (atomically).
        feature_names: column names when ``sample`` is an array.
        parity: thresholds of the ONNX parity check (default ``ParityThresholds()``).
        force: write an ONNX conversion that fails its parity check, marked as failed.

    Raises:
        NotFittedModelError, SampleMismatchError, LabelMapError, BundleExistsError,
        UnknownFormatError, SchemaError: as named; nothing is written when any is raised.
        UnconvertibleModelError, ParityError: the ONNX conversion failed and ``"onnx"`` was
        the only format; with other formats those are written and an
        ``ArtifactSkippedWarning`` carries the error.

    Example:
        >>> modelkeep.save(pipeline, "churn", sample=X_train, name="churn",
        ...                labels={0: "No Churn", 1: "Churn"}, metrics={"f1": 0.71})
    """
    target = Path(path)
    _check_fitted(model)
    fmt_names = _check_formats(formats)
    if not name or not isinstance(name, str):
        raise InvalidChoiceError(repr(name), ["a non-empty string"], "name")
    if isinstance(golden_rows, bool) or not isinstance(golden_rows, int) or golden_rows < 0:
        raise InvalidChoiceError(repr(golden_rows), ["an integer >= 0"], "golden_rows")
    _check_importable(model)
    _existing_bundle(target, overwrite)  # fail early; checked again under the lock

    from modelkeep.golden import check_sample_kinds, record_golden
    from modelkeep.schema import infer_schema

    frame = _sample_frame(model, sample, feature_names)
    features = infer_schema(frame)
    check_sample_kinds(model, frame, features)
    task, classes = _infer_task(model)
    target_info = _target(classes, labels, task)
    golden = record_golden(model, frame, features, golden_rows, proba=task != "regression")
    # From here to the rename into place, one save of this path at a time: two processes
    # overwriting it would otherwise both read version n and both write n + 1.
    with _save_lock(target, path):
        previous = _existing_bundle(target, overwrite)
        # Replaced even when its manifest is unreadable or holds a link (previous is None).
        replace = target.exists()
        resolved_version = _resolve_version(version, previous)
        context = DumpContext(
            features=features,
            task=task,
            classes=classes,
            golden=golden,
            labels=[e.label for e in target_info.labels] if target_info.labels else None,
            validation=frame,
            parity=parity,
            force=force,
        )
        return _write_bundle(
            model,
            target,
            replace=replace,
            formats=fmt_names,
            context=context,
            build=lambda artifacts: Manifest(
                name=name,
                version=resolved_version,
                created_at=datetime.now(timezone.utc).replace(microsecond=0),
                description=description,
                tags=list(tags or []),
                modelkeep_version=__version__,
                model_type=f"{type(model).__module__}.{type(model).__qualname__}",
                task=task,
                features=features,
                target=target_info,
                metrics=_check_metrics(metrics),
                data=DataInfo(
                    fingerprint=fingerprint_frame(frame),
                    n_rows=len(frame),
                    data_version=data_version,
                ),
                environment=capture_environment(model),
                artifacts=artifacts,
                golden=golden,
            ),
        )


def _write_bundle(
    model: Any,
    target: Path,
    *,
    replace: bool,
    formats: list[str],
    context: DumpContext,
    build: Callable[[list[Artifact]], Manifest],
) -> Manifest:
    """Write the artifacts and the manifest ``build`` makes of them, atomically at target."""
    build([])  # validate everything that can fail before the first byte is written
    with _atomic_directory(target, replace=replace) as staging:
        (staging / _ARTIFACTS).mkdir()
        artifacts = _write_artifacts(model, staging, formats, context)
        manifest = build(artifacts)
        _write_file(staging / MANIFEST_NAME, dump_manifest(manifest).encode("utf-8"))
    return manifest


def _check_fitted(model: Any) -> None:
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


def _check_importable(model: Any) -> None:
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


def _check_formats(formats: Sequence[str]) -> list[str]:
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


def _sample_frame(model: Any, sample: Any, feature_names: Sequence[str] | None) -> pd.DataFrame:
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


def _infer_task(model: Any) -> tuple[Task, list[Scalar] | None]:
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


def _target(classes: list[Scalar] | None, labels: Mapping[Any, str] | None, task: Task) -> Target:
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


def _check_metrics(metrics: Mapping[str, float] | None) -> dict[str, float]:
    checked: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        if not isinstance(key, str):
            raise InvalidChoiceError(repr(key), ["string metric names"], "metrics")
        number = value.item() if isinstance(value, np.generic) else value
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise InvalidChoiceError(repr(value), ["a number"], f"metrics[{key!r}]")
        if not math.isfinite(number):
            raise InvalidChoiceError(repr(value), ["a finite number"], f"metrics[{key!r}]")
        checked[key] = float(number)
    return checked


_LOCK_SUFFIX = ".modelkeep-lock"


@contextmanager
def _save_lock(target: Path, given: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on ``.<name>.modelkeep-lock`` beside ``target``.

    A concurrent save of the same path waits for this one, then sees its bundle: versions
    stay distinct and a first save never races another. The lock file is removed on
    release; a waiter that then holds the lock of a removed file tries again on the new
    one, so two writers never hold "the" lock at once. Where ``fcntl`` is missing
    (Windows) saves are not serialized.
    """
    parent = _writable_parent(target, given)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock_path = parent / f".{target.name}{_LOCK_SUFFIX}"
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise _write_error(given, exc, parent) from exc
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            held = os.fstat(fd)
            current = os.stat(lock_path, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        if current is not None and (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
            break
        os.close(fd)  # the previous holder removed this file: lock the new one
    try:
        yield
    finally:
        os.unlink(lock_path)  # still locked: a waiter on this file sees it gone, retries
        os.close(fd)


def _writable_parent(target: Path, given: str | os.PathLike[str]) -> Path:
    """``target``'s parent, created if needed; a path no bundle can be written at raises."""
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(given, exc, parent) from exc
    return parent


def _write_error(given: str | os.PathLike[str], exc: OSError, parent: Path) -> BundleWriteError:
    path = os.fspath(given)
    blocker = next((p for p in [parent, *parent.parents] if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        return BundleWriteError(
            path,
            f"{str(blocker)!r} is a file, not a directory",
            "Choose a path whose parent folders are directories (or can be created).",
        )
    if isinstance(exc, PermissionError):
        where = blocker if blocker is not None else parent
        return BundleWriteError(
            path,
            f"no permission to write in {str(where)!r}",
            "Choose a folder you can write to, or change its permissions.",
        )
    return BundleWriteError(path, exc.strerror or str(exc), "Check the path and the disk.")


def _existing_bundle(target: Path, overwrite: bool) -> Manifest | None:
    if not target.exists() and not target.is_symlink():
        return None
    if not overwrite:
        raise BundleExistsError(str(target))
    if target.is_symlink() or not (target / MANIFEST_NAME).is_file():
        # Never delete something that is not a bundle, whatever overwrite says.
        raise BundleExistsError(str(target) + " (and it is not a modelkeep bundle)")
    try:
        return _read_manifest_at(target)
    except (ManifestError, BundleLayoutError):
        return None  # only its version is wanted; the whole directory is replaced anyway


def _resolve_version(version: str | int | None, previous: Manifest | None) -> str:
    if version is not None:
        if isinstance(version, bool) or not str(version).strip():
            raise InvalidChoiceError(repr(version), ["a non-empty string or number"], "version")
        return str(version)
    if previous is not None and previous.version.isdigit():
        return str(int(previous.version) + 1)
    return "1"


def _write_artifacts(
    model: Any, staging: Path, fmt_names: Sequence[str], context: DumpContext
) -> list[Artifact]:
    """Write each format; a conversion that fails is left out if other formats remain.

    A format that cannot hold the model faithfully (an ONNX step without a converter, a
    failed parity check) is an error when it is the only one asked for; among several,
    the others are saved and an ArtifactSkippedWarning carries the error.
    """
    artifacts: list[Artifact] = []
    skipped: list[tuple[str, ConversionError]] = []
    for fmt_name in fmt_names:
        try:
            artifacts.append(_write_artifact(model, staging, fmt_name, context))
        except ConversionError as exc:
            if len(fmt_names) == 1:
                raise
            skipped.append((fmt_name, exc))
    for fmt_name, error in skipped:
        warnings.warn(
            ArtifactSkippedWarning(fmt_name, error, [a.format for a in artifacts]), stacklevel=3
        )
    return artifacts


def _write_artifact(
    model: Any, staging: Path, fmt_name: str, context: DumpContext | None = None
) -> Artifact:
    fmt = get_format(fmt_name)
    relative = f"{_ARTIFACTS}/pipeline.{fmt.extension}"
    file = staging / relative
    try:
        details = fmt.dump(model, file, context=context)
    except BaseException:
        file.unlink(missing_ok=True)
        raise
    with file.open("rb") as stream:
        digest, size = sha256_stream(stream)
    _fsync(file)
    return Artifact(path=relative, format=fmt.name, sha256=digest, size=size, details=details)


def _write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _atomic_directory(target: Path, *, replace: bool) -> Iterator[Path]:
    """Yield a staging directory beside ``target``; move it into place on success.

    On any failure the staging directory is removed, so nothing is left behind. Replacing
    swaps the two directories in one rename (Linux ``renameat2(RENAME_EXCHANGE)``), so a
    reader sees the old bundle or the new one, never a mix.
    """
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_staging(target)
    staging = parent / f".{target.name}.modelkeep-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    held = _hold_directory(staging)
    try:
        yield staging
        _fsync(staging / _ARTIFACTS)
        _fsync(staging)
        if replace:
            _swap_into_place(staging, target)
        else:
            try:
                os.rename(staging, target)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise BundleExistsError(str(target)) from exc
                raise
        _fsync(parent)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        if held is not None:
            os.close(held)


# A staging directory younger than this is never taken for a dead save's: its owner may
# not have locked it yet (mkdir and flock are two calls).
_STAGING_GRACE_SECONDS = 2.0


def _hold_directory(path: Path) -> int | None:
    """An open descriptor holding an exclusive flock on ``path`` (None without fcntl).

    The lock lives as long as the saving process: a staging directory nobody holds
    belongs to a save that was killed.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _remove_dead_staging(target: Path) -> None:
    """Remove the staging directories beside ``target`` left by saves that were killed.

    A save removes its staging directory on any error, but not when its process is
    killed; the next write to the same path removes it, once no process holds its lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: liveness cannot be told
        return
    pattern = re.compile(rf"\.{re.escape(target.name)}\.modelkeep-[0-9a-f]{{12}}")
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    for entry in entries:
        if not pattern.fullmatch(entry.name) or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live save holds it
            if time.time() - os.fstat(fd).st_ctime >= _STAGING_GRACE_SECONDS:
                shutil.rmtree(entry.path, ignore_errors=True)
        finally:
            os.close(fd)


def _swap_into_place(staging: Path, target: Path) -> None:
    if _rename_exchange(staging, target):
        return  # staging now holds the old bundle; the finally clause removes it
    old = target.parent / f".{target.name}.modelkeep-old-{uuid.uuid4().hex[:12]}"
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _rename_exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths; False where the OS cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


# --------------------------------------------------------------------------------- load


# A reader retries when a concurrent overwrite removed the files it was reading; each
# attempt reads one whole bundle, old or new.
_ATTEMPTS = 3


def _read_manifest_at(path: Path) -> Manifest:
    with open_bundle(path) as reader:
        return reader.manifest()


def load(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    env: EnvMode = "warn",
    trusted: Sequence[str] | None = None,
    atol: float = 1e-6,
    public_key: str | os.PathLike[str] | None = None,
    session_options: SessionOptions | None = None,
    manifest_sha256: str | None = None,
) -> Model:
    """Load a bundle, checking it step by step, and return a :class:`Model`.

    The steps, in this order:

    1. refuse a bundle holding a symlink (or special file) anywhere, then parse and
       validate the manifest;
    2. with ``public_key``: check the signature (``model.sig``) covers these manifest bytes
       and every artifact and was made with that key's private key;
    3. check every artifact's size and SHA-256;
    4. compare the recorded environment with this one (``env``);
    5. check the chosen artifact's content is the format the manifest records, then
       deserialize it safely, validating every tree in it;
    6. check the manifest's claims the model can confirm (features against
       ``feature_names_in_``, task, classes against ``classes_``, label keys);
    7. replay the golden samples.

    The order is the point: nothing is deserialized before its bytes are known to be the
    ones saved (and, with a key, the ones its owner signed), and nothing calls the model
    before its trees are known to be well formed, or before the manifest that describes its
    inputs and outputs is known to agree with it. The artifact is read into memory once and
    that same buffer is hashed and deserialized, so the file cannot change between the
    check and the load; the signature is tied to the manifest bytes parsed and, through
    their SHA-256 entries, to that buffer.

    Args:
        path: the bundle directory.
        format: which artifact to load (default: the first one recorded).
        env: ``"warn"`` (default) warns with each environment difference, ``"strict"``
            raises :class:`EnvironmentMismatchError`, ``"ignore"`` skips the comparison.
        trusted: extra exact type names (``"package.module.Class"``) to trust in the
            artifact, for estimators modelkeep does not trust by default.
        atol: tolerance for probabilities (and regression outputs) in the golden replay.
        public_key: the publisher's public key (PEM, as ``modelkeep keygen`` writes it);
            when given, a bundle whose signature is missing or wrong is refused before any
            artifact is read. Needs the ``[sign]`` extra.
        session_options: for ``format="onnx"``, how the onnxruntime session runs
            (``modelkeep.onnx.SessionOptions``: threads, optimization level).
        manifest_sha256: the SHA-256 the manifest's bytes must have; a registry passes the
            one it recorded when the version was registered.

    With ``format="onnx"`` the artifact runs in onnxruntime (the ``[onnx-runtime]`` extra)
    and neither scikit-learn, skops nor pandas is imported: the environment step compares
    the onnxruntime version the parity check ran on, the golden replay allows the parity
    thresholds the artifact passed, and an artifact written past a failed parity check
    (``force=True``) warns with ``ParityWarning`` on every load.

    Raises:
        BundleNotFoundError, BundleLayoutError, ManifestError, SignatureError,
        SigningKeyError, IntegrityError, EnvironmentMismatchError, ArtifactFormatError,
        UntrustedTypesError, UnsafeModelError, GoldenMismatchError; all ModelkeepError.

    Example:
        >>> model = modelkeep.load("churn")
        >>> model.predict({"tenure": 3, "monthly_charges": 80.5, ...})
        array(['Churn'], dtype=object)
    """
    for attempt in range(_ATTEMPTS):
        checks = _Checks(
            path,
            format=format,
            env=env,
            trusted=trusted,
            atol=atol,
            public_key=public_key,
            session_options=session_options,
            manifest_sha256=manifest_sha256,
        )
        try:
            manifest = checks.manifest()
            checks.signature(manifest)
            checks.integrity(manifest)
            checks.environment(manifest)
            checks.deserialize(manifest)
            checks.claims(manifest)
            checks.golden(manifest)
        except _Replaced:
            if attempt == _ATTEMPTS - 1:
                raise BundleNotFoundError(
                    str(path), "it was replaced repeatedly while being read"
                ) from None
            continue
        finally:
            checks.close()
        return checks.model(manifest, source=str(path))
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class Check:
    """One step of :func:`verify`: its name, whether it passed, and what it found."""

    name: str
    passed: bool
    detail: str


class _Checks:
    """The load sequence, one method per step, shared by :func:`load` and :func:`verify`."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        format: str | None,
        env: str,
        trusted: Sequence[str] | None,
        atol: float,
        public_key: str | os.PathLike[str] | None = None,
        session_options: SessionOptions | None = None,
        manifest_sha256: str | None = None,
    ) -> None:
        _check_options(env=env, trusted=trusted, atol=atol)
        self.manifest_sha256 = manifest_sha256
        self.confirmed: list[str] = []
        self.format = format
        self.env = env
        self.trusted = list(trusted or [])
        self.atol = float(atol)
        self.public_key = public_key
        self.session_options = session_options
        self.reader = _BundleReader(Path(path))
        self._data: bytes | None = None
        self.chosen: Artifact
        self.differences: list[Any] = []
        self.estimator: Any = None
        self.replayed = 0
        self.signed: VerifiedSignature | None = None

    def close(self) -> None:
        self.reader.close()

    def manifest(self) -> Manifest:
        try:
            manifest = self.reader.manifest()
        except ManifestError:
            # A registry copy whose bytes changed is said so first, parsed or not.
            self._check_recorded_hash()
            # With a key, bytes that do not parse are first a question for the signature: a
            # changed byte is reported as tampering, not as a damaged bundle.
            if self.public_key is not None and self.reader.manifest_bytes is not None:
                self._check_signature(None)
            raise
        self._check_recorded_hash()
        if not manifest.artifacts:
            raise ManifestError(str(self.reader.path / MANIFEST_NAME), "no artifacts listed")
        if self.format is None:
            self.chosen = manifest.artifacts[0]
        else:
            chosen = manifest.artifact(self.format)
            if chosen is None:
                raise UnknownFormatError(
                    self.format,
                    [a.format for a in manifest.artifacts],
                    context="format (the formats this bundle holds)",
                )
            self.chosen = chosen
        return manifest

    def _check_recorded_hash(self) -> None:
        data = self.reader.manifest_bytes
        if self.manifest_sha256 is None or data is None:
            return
        got = hashlib.sha256(data).hexdigest()
        if got != self.manifest_sha256:
            raise ManifestError(
                str(self.reader.path / MANIFEST_NAME),
                f"sha256 expected {self.manifest_sha256} (recorded when it was registered), "
                f"got {got}: it changed in the registry's store",
            )

    def signature(self, manifest: Manifest) -> None:
        if self.public_key is not None:
            self._check_signature(manifest)

    def _check_signature(self, manifest: Manifest | None) -> None:
        if self.public_key is None or self.reader.manifest_bytes is None:
            raise RuntimeError("a signature is checked only with a key, after the manifest")
        try:
            self.signed = check_signature(
                self.reader.path,
                signature=self.reader.signature(),
                manifest_bytes=self.reader.manifest_bytes,
                manifest=manifest,
                public_key=self.public_key,
            )
        except SignatureError:
            # The reference verifier hashes files by path: if a concurrent save swapped the
            # bundle meanwhile, read the whole bundle again rather than report a mismatch.
            if self.reader.replaced():
                raise _Replaced from None
            raise

    def integrity(self, manifest: Manifest) -> None:
        for artifact in manifest.artifacts:
            if artifact is self.chosen:
                self._data = self.reader.read_artifact(artifact)
            else:
                self.reader.check_artifact(artifact)

    def environment(self, manifest: Manifest) -> None:
        if self.env == "ignore":
            return
        fmt = get_format(self.chosen.format)
        if isinstance(fmt, ServingFormat):
            # Its artifact runs without the training stack: only what runs it is compared.
            self.differences = fmt.environment_differences(manifest, self.chosen)
        else:
            self.differences = compare_environment(manifest.environment)
        if not self.differences:
            return
        if self.env == "strict":
            raise EnvironmentMismatchError(self.differences)
        warnings.warn(EnvironmentMismatchWarning(self.differences), stacklevel=3)

    def deserialize(self, manifest: Manifest) -> Any:
        if self._data is None:
            self._data = self.reader.read_artifact(self.chosen)
        fmt = get_format(self.chosen.format)
        # The hash proves these are the bytes saved, not that they are what the manifest
        # says they are: a crafted manifest could hand a pickle to a loader of another
        # format. Judge the content before any loader sees it.
        found = sniff(self._data, parse_onnx=False)
        if found != content_of(self.chosen.format):
            raise ArtifactFormatError(self.chosen.path, self.chosen.format, found)
        if isinstance(fmt, ServingFormat):
            options = {} if self.session_options is None else {"session": self.session_options}
            estimator = fmt.open(
                self._data, manifest=manifest, artifact=self.chosen, options=options
            )
        else:
            if self.session_options is not None:
                raise InvalidChoiceError(
                    "session_options=...",
                    ["None for a non-ONNX artifact"],
                    f"session_options (format {self.chosen.format!r})",
                )
            estimator = fmt.load(
                io.BytesIO(self._data), artifact=self.chosen.path, trusted=self.trusted
            )
        self._data = None
        self.estimator = estimator
        return estimator

    def claims(self, manifest: Manifest) -> None:
        if isinstance(get_format(self.chosen.format), ServingFormat):
            # Its graph's inputs were compared with the features as it was opened.
            self.confirmed = ["features (graph inputs)"]
            return
        source = str(self.reader.path / MANIFEST_NAME)
        self.confirmed = check_claims(self.estimator, manifest, source)

    def golden(self, manifest: Manifest) -> None:
        fmt = get_format(self.chosen.format)
        if isinstance(fmt, ServingFormat):
            self.replayed = fmt.replay_golden(self.estimator, manifest, self.chosen, atol=self.atol)
            return
        from modelkeep.golden import replay_golden

        self.replayed = replay_golden(
            self.estimator, manifest.golden, manifest.features, atol=self.atol
        )

    def model(self, manifest: Manifest, *, source: str) -> Model:
        fmt = get_format(self.chosen.format)
        if isinstance(fmt, ServingFormat):
            return fmt.model(self.estimator, manifest, self.chosen, source=source)
        return Model(self.estimator, manifest, format=self.chosen.format, source=source)


def verify(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    env: EnvMode = "warn",
    trusted: Sequence[str] | None = None,
    atol: float = 1e-6,
    public_key: str | os.PathLike[str] | None = None,
    manifest_sha256: str | None = None,
) -> list[Check]:
    """Run the load sequence and report each step as passed or failed.

    Stops at the first failure; the steps after it are not listed. In ``env="warn"`` mode
    environment differences are reported in the passing check's detail. With
    ``public_key``, a ``signature`` check follows the manifest, as in :func:`load`.

    Raises:
        InvalidChoiceError, NeverTrustedError: an invalid argument (``env``, ``atol``,
            ``trusted``); a problem with the bundle is a failed check instead.
    """
    results: list[Check] = []
    _check_options(env=env, trusted=trusted, atol=atol)
    try:
        checks = _Checks(
            path,
            format=format,
            env=env,
            trusted=trusted,
            atol=atol,
            public_key=public_key,
            manifest_sha256=manifest_sha256,
        )
    except ModelkeepError as exc:
        return [Check("bundle", False, str(exc))]
    try:
        try:
            manifest = checks.manifest()
        except ModelkeepError as exc:
            failed = "signature" if isinstance(exc, SignatureError) else "manifest"
            return [Check(failed, False, str(exc))]
        recorded = "" if manifest_sha256 is None else "; sha256 as recorded when registered"
        results.append(
            Check(
                "manifest",
                True,
                f"{manifest.name} version {manifest.version}, format {manifest.format_version}"
                + recorded,
            )
        )
        steps: list[tuple[str, Callable[[], object]]] = [
            *([("signature", lambda: checks.signature(manifest))] if public_key else []),
            ("integrity", lambda: checks.integrity(manifest)),
            ("environment", lambda: _quiet_environment(checks, manifest)),
            ("artifact", lambda: checks.deserialize(manifest)),
            ("manifest claims", lambda: checks.claims(manifest)),
            ("golden samples", lambda: checks.golden(manifest)),
        ]
        for name, step in steps:
            try:
                step()
            except ModelkeepError as exc:
                results.append(Check(name, False, str(exc)))
                return results
            results.append(Check(name, True, _detail(name, checks, manifest)))
        results.extend(_parity_checks(manifest))
    finally:
        checks.close()
    return results


def _check_options(*, env: str, trusted: Sequence[str] | None, atol: float) -> None:
    """The arguments of load() and verify() that do not depend on the bundle."""
    if env not in _ENV_MODES:
        raise InvalidChoiceError(str(env), _ENV_MODES, "env")
    if isinstance(trusted, str):
        raise InvalidChoiceError(repr(trusted), ["a list of exact type names"], "trusted")
    # The one trust policy, whatever the format: a never-trusted name is refused here even
    # for a format whose loader would not consult the pickle allowlist (skops, ONNX).
    TrustPolicy(trusted)
    if not (isinstance(atol, int | float) and atol >= 0 and math.isfinite(atol)):
        raise InvalidChoiceError(repr(atol), ["a finite number >= 0"], "atol")


def _parity_checks(manifest: Manifest) -> list[Check]:
    """The recorded parity report of each converted artifact; failed if forced past it.

    A bundle holding an artifact written past a failed parity check (``force=True``) does
    not verify, whichever artifact was loaded: verify answers whether the bundle is sound.
    """
    from modelkeep.onnx.report import ParityReport, summarize

    checks = []
    for artifact in manifest.artifacts:
        recorded = artifact.details.get("parity")
        if not isinstance(recorded, Mapping):
            continue
        try:
            report = ParityReport.model_validate(recorded)
        except ValueError as exc:
            checks.append(Check("parity", False, f"{artifact.path}: unreadable report ({exc})"))
            continue
        checks.append(Check("parity", report.passed, f"{artifact.path}: {summarize(report)}"))
    return checks


def _quiet_environment(checks: _Checks, manifest: Manifest) -> None:
    # verify() reports differences in its result instead of as a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EnvironmentMismatchWarning)
        checks.environment(manifest)


def _detail(name: str, checks: _Checks, manifest: Manifest) -> str:
    if name == "signature":
        signed = checks.signed
        if signed is None:  # pragma: no cover - the step runs only with a key
            return "not checked"
        return (
            f"{SIGNATURE_NAME} verified with {str(checks.public_key)!r} (key id "
            f"{signed.key_id[:16]}): {len(signed.files)} file(s) signed, none added"
        )
    if name == "integrity":
        return f"{len(manifest.artifacts)} artifact(s): size and sha256 match"
    if name == "manifest claims":
        if not checks.confirmed:
            return "the artifact confirms none (no feature_names_in_, classes_ or kind)"
        return "confirmed by the artifact: " + ", ".join(checks.confirmed)
    if name == "environment":
        if checks.env == "ignore":
            return "not compared (env='ignore')"
        if not checks.differences:
            return "matches the recorded environment"
        return "differs (warning): " + "; ".join(str(d) for d in checks.differences)
    if name == "artifact":
        fmt = get_format(checks.chosen.format)
        if isinstance(fmt, ServingFormat):
            return fmt.describe(checks.estimator, checks.chosen)
        from modelkeep.safety.trees import validate_trees

        # Already validated during the load; run again only to count them for the report.
        trees = validate_trees(checks.estimator)
        counted = f", {trees} tree(s) validated" if trees else ""
        return f"{checks.chosen.path} loaded ({checks.chosen.format}){counted}"
    return f"{checks.replayed} golden row(s) reproduced"

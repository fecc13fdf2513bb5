"""The manifest's claims, checked against the estimator they describe.

The hashes prove an artifact holds the bytes that were saved, not that the manifest beside
it describes them: the manifest is plain text that only a signature protects. An edited
manifest would otherwise go unnoticed (``task`` changed to regression: inspect calls a
classifier a regressor) or surface late as a raw scikit-learn error (a feature removed:
"columns are missing" on the first prediction). So once the estimator is deserialized,
and before its golden samples are replayed, every claim it can confirm is compared:

* ``features`` against ``feature_names_in_`` (names and order), when the model has it;
* ``task`` against the estimator's kind (a classifier or a regressor);
* ``target.classes`` against ``classes_``, and the class count against binary/multiclass;
* the keys of ``target.labels`` against those classes.

A swapped label map (each key kept, two labels exchanged) is not among them: nothing in the
artifact knows the business labels. ONNX artifacts are checked where their graph is opened
(:class:`modelkeep.onnx.runtime.OnnxRuntime` compares the graph's inputs with ``features``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelkeep._inputs import plain_values
from modelkeep.errors import ManifestError, format_names
from modelkeep.manifest import Manifest

__all__ = ["check_claims"]


def check_claims(estimator: Any, manifest: Manifest, source: str) -> list[str]:
    """Compare the manifest with what ``estimator`` confirms; the claims confirmed.

    Raises:
        ManifestError: a claim disagrees with the estimator; the message names the field.
    """
    confirmed = []
    if _features(estimator, manifest, source):
        confirmed.append("features (feature_names_in_)")
    kind = _kind(estimator)
    if kind is not None:
        _task(kind, estimator, manifest, source)
        confirmed.append("task")
    classes = _classes(estimator) if kind == "classifier" else None
    if classes is not None:
        _target(classes, manifest, source)
        confirmed.extend(["classes (classes_)", "label keys"])
    return confirmed


def _mismatch(source: str, field: str, detail: str) -> ManifestError:
    return ManifestError(
        source,
        f"field {field!r} disagrees with the artifact: {detail}. The manifest was edited "
        "after the model was saved",
    )


def _features(estimator: Any, manifest: Manifest, source: str) -> bool:
    try:
        fitted = getattr(estimator, "feature_names_in_", None)
    except Exception:  # a pipeline's property can raise anything its first step does
        fitted = None
    if fitted is None:
        return False
    expected = [str(name) for name in np.asarray(fitted).tolist()]
    got = manifest.feature_names
    if expected == got:
        return True
    missing, unexpected = set(expected) - set(got), set(got) - set(expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {format_names(missing)}")
        if unexpected:
            parts.append(f"unexpected {format_names(unexpected)}")
        detail = "; ".join(parts)
    else:
        detail = "the same names in another order"
    raise _mismatch(
        source,
        "features",
        f"expected the {len(expected)} feature(s) the model was fitted on "
        f"(its feature_names_in_), in order, got {len(got)}: {detail}",
    )


def _kind(estimator: Any) -> str | None:
    """``"classifier"``, ``"regressor"``, or None when the estimator does not say."""
    classes = getattr(estimator, "classes_", None)
    try:
        from sklearn.base import is_classifier, is_regressor

        if is_classifier(estimator) or (classes is not None and not is_regressor(estimator)):
            return "classifier"
        if is_regressor(estimator):
            return "regressor"
    except Exception:  # an estimator whose tags cannot be read confirms nothing
        return None
    return None


def _task(kind: str, estimator: Any, manifest: Manifest, source: str) -> None:
    claimed = "regressor" if manifest.task == "regression" else "classifier"
    if claimed != kind:
        raise _mismatch(
            source,
            "task",
            f"expected {'regression' if kind == 'regressor' else 'binary or multiclass'} "
            f"(the model, {type(estimator).__name__}, is a {kind}), got {manifest.task!r}",
        )


def _classes(estimator: Any) -> list[Any] | None:
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        return None
    values = np.asarray(classes)
    if values.ndim != 1:
        return None
    return plain_values(values)


def _target(classes: list[Any], manifest: Manifest, source: str) -> None:
    expected = "binary" if len(classes) == 2 else "multiclass"
    if manifest.task != expected:
        raise _mismatch(
            source,
            "task",
            f"expected {expected!r} (the model has {len(classes)} classes), got {manifest.task!r}",
        )
    claimed = manifest.target.classes
    if claimed is None or _keys(claimed) != _keys(classes):
        raise _mismatch(
            source,
            "target.classes",
            f"expected the model's classes_ {classes!r}, got {claimed!r}",
        )
    labels = manifest.target.labels
    if labels is not None:
        keys = [entry.value for entry in labels]
        if sorted(_keys(keys)) != sorted(_keys(classes)):
            raise _mismatch(
                source,
                "target.labels",
                f"expected one label for each of the model's classes {classes!r}, got labels "
                f"for {keys!r}",
            )


def _keys(values: list[Any]) -> list[str]:
    # By repr, as save() compares them: 1, 1.0, True and "1" are different classes.
    return [repr(v) for v in values]

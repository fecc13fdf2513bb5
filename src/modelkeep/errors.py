"""Every error and warning modelkeep raises.

Each error derives from :class:`ModelkeepError` and from the closest builtin, so callers can
catch either. Errors carry their facts as attributes; the message is built from them in
``__init__`` in one shape: what went wrong, what was expected, what came, what to do.

Hierarchy::

    ModelkeepError(Exception)
    ├── ManifestError(ValueError)               the manifest cannot be read or is invalid
    │   └── UnsupportedFormatVersionError       written by a newer/unknown modelkeep
    ├── BundleExistsError(FileExistsError)      save() target exists and overwrite=False
    ├── BundleNotFoundError(FileNotFoundError)  no bundle at the path given
    ├── IntegrityError(ValueError)              an artifact's size or SHA-256 changed
    ├── ArtifactError(ValueError)               an artifact cannot be deserialized
    ├── EnvironmentMismatchError(RuntimeError)  env="strict" and versions differ
    ├── UntrustedTypesError(TypeError)          the artifact references types nobody trusted
    ├── UnsafeModelError(ValueError)            a deserialized tree is malformed
    ├── GoldenMismatchError(ValueError)         the loaded model disagrees with its golden samples
    ├── NotFittedModelError(ValueError)         save() was given an unfitted estimator
    ├── SampleMismatchError(ValueError)         save()'s sample disagrees with the model
    ├── LabelMapError(ValueError)               labels= keys are not the model's classes
    ├── SchemaError(ValueError)                 prediction input does not fit the schema
    ├── InvalidChoiceError(ValueError)          an option outside its allowed values
    │   └── UnknownFormatError                  a format name modelkeep does not know
    └── MissingDependencyError(ImportError)     an optional extra is not installed

    ModelkeepWarning(UserWarning)
    ├── EnvironmentMismatchWarning              env="warn" and versions differ
    └── SchemaWarning                           input accepted but unusual (unseen category ...)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ArtifactError",
    "BundleExistsError",
    "BundleNotFoundError",
    "EnvironmentDifference",
    "EnvironmentMismatchError",
    "EnvironmentMismatchWarning",
    "GoldenMismatchError",
    "IntegrityError",
    "InvalidChoiceError",
    "LabelMapError",
    "ManifestError",
    "MissingDependencyError",
    "ModelkeepError",
    "ModelkeepWarning",
    "NotFittedModelError",
    "SampleMismatchError",
    "SchemaError",
    "SchemaWarning",
    "UnknownFormatError",
    "UnsafeModelError",
    "UnsupportedFormatVersionError",
    "UntrustedTypesError",
]

_MAX_LISTED = 5


def format_names(names: Iterable[object], limit: int = _MAX_LISTED) -> str:
    """Sorted, quoted, capped list of names: ``'a', 'b', ... and 3 more``."""
    items = sorted({repr(str(n)) for n in names})
    shown = ", ".join(items[:limit])
    if len(items) > limit:
        shown += f" and {len(items) - limit} more"
    return shown


class ModelkeepError(Exception):
    """Base class of every error modelkeep raises."""


class ManifestError(ModelkeepError, ValueError):
    """The bundle's manifest is missing, unreadable or invalid."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(
            f"Manifest {path!r}: {problem}. The bundle is damaged or was not written by "
            "modelkeep; save the model again or restore the bundle from a copy."
        )


class UnsupportedFormatVersionError(ManifestError):
    """The manifest declares a format version this modelkeep cannot read."""

    def __init__(self, path: str, found: object, supported: Sequence[int]) -> None:
        self.found = found
        self.supported = tuple(supported)
        ModelkeepError.__init__(
            self,
            f"Manifest {path!r}: format_version expected one of "
            f"{', '.join(map(str, supported))}, got {found!r}. The bundle was written by a "
            "different modelkeep release; upgrade modelkeep to read it.",
        )
        self.path = path
        self.problem = f"unsupported format_version {found!r}"


class BundleExistsError(ModelkeepError, FileExistsError):
    """``save()`` refuses to replace an existing path without ``overwrite=True``."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"Cannot save to {path!r}: it already exists. Pass overwrite=True to replace it "
            "atomically, or choose another path."
        )


class BundleNotFoundError(ModelkeepError, FileNotFoundError):
    """There is no bundle at the given path."""

    def __init__(self, path: str, detail: str = "no such directory") -> None:
        self.path = path
        super().__init__(
            f"No modelkeep bundle at {path!r}: {detail}. Expected a directory holding "
            "modelkeep.json, as written by modelkeep.save()."
        )


class IntegrityError(ModelkeepError, ValueError):
    """An artifact's bytes differ from what the manifest recorded."""

    def __init__(self, artifact: str, field: str, expected: object, got: object) -> None:
        self.artifact = artifact
        self.field = field
        self.expected = expected
        self.got = got
        super().__init__(
            f"Artifact {artifact!r}: {field} expected {expected}, got {got}. The file "
            "changed after it was saved; restore it or save the model again."
        )


class ArtifactError(ModelkeepError, ValueError):
    """An artifact whose hash matched but which its format cannot read."""

    def __init__(self, artifact: str, format: str, cause: BaseException) -> None:
        self.artifact = artifact
        self.format = format
        super().__init__(
            f"Artifact {artifact!r}: expected a readable {format} file, got an error while "
            f"reading it: {type(cause).__name__}: {cause}. The file was written by an "
            "incompatible tool or crafted; save the model again."
        )


@dataclass(frozen=True)
class EnvironmentDifference:
    """One package (or the Python version) recorded at save time vs installed now."""

    name: str
    recorded: str | None
    installed: str | None

    def __str__(self) -> str:
        return (
            f"{self.name}: recorded {self.recorded or 'absent'}, "
            f"installed {self.installed or 'absent'}"
        )


def _describe_differences(differences: Sequence[EnvironmentDifference]) -> str:
    return "; ".join(str(d) for d in differences)


class EnvironmentMismatchError(ModelkeepError, RuntimeError):
    """``env="strict"`` and the environment differs from the recorded one."""

    def __init__(self, differences: Sequence[EnvironmentDifference]) -> None:
        self.differences = tuple(differences)
        super().__init__(
            "Environment differs from the one the model was saved in: "
            f"{_describe_differences(self.differences)}. Install the recorded versions "
            "(the manifest's environment.requirements), or load with env='warn'."
        )


class UntrustedTypesError(ModelkeepError, TypeError):
    """The artifact references types that are neither trusted by default nor passed in."""

    def __init__(self, artifact: str, types: Iterable[str]) -> None:
        self.artifact = artifact
        self.types = tuple(sorted(set(types)))
        listed = ", ".join(self.types)
        super().__init__(
            f"Artifact {artifact!r} references {len(self.types)} untrusted type(s): {listed}. "
            "modelkeep did not load it. If you know where this file came from and trust "
            "these exact types, pass them as trusted=[...]."
        )


class UnsafeModelError(ModelkeepError, ValueError):
    """A deserialized tree has node arrays that would make ``predict`` read out of bounds."""

    def __init__(self, estimator_path: str, node: int, reason: str) -> None:
        self.estimator_path = estimator_path
        self.node = node
        self.reason = reason
        super().__init__(
            f"Refusing {estimator_path}: node {node}: {reason}. A well-formed tree never has "
            "this; the file was crafted or corrupted. Do not use it; save the model again "
            "from its source."
        )


class GoldenMismatchError(ModelkeepError, ValueError):
    """The loaded model does not reproduce the outputs recorded at save time."""

    def __init__(
        self,
        output: str,
        rows: Sequence[int],
        largest_difference: float | None,
        n_rows: int,
        atol: float | None = None,
    ) -> None:
        self.output = output
        self.rows = tuple(rows)
        self.largest_difference = largest_difference
        self.n_rows = n_rows
        shown = ", ".join(str(r) for r in self.rows[:10])
        if len(self.rows) > 10:
            shown += f" and {len(self.rows) - 10} more"
        detail = f"{len(self.rows)} of {n_rows} golden rows differ (rows {shown})"
        if largest_difference is not None:
            detail += f"; largest difference {largest_difference:.3g}"
            if atol is not None:
                detail += f", tolerance {atol:.3g}"
        super().__init__(
            f"Golden samples: {output} does not match what the model gave at save time: "
            f"{detail}. The artifact is not the model that was saved, or this environment "
            "computes differently; compare environments with `modelkeep verify`."
        )


class NotFittedModelError(ModelkeepError, ValueError):
    """``save()`` was given an estimator that has not been fitted."""

    def __init__(self, model_type: str) -> None:
        self.model_type = model_type
        super().__init__(
            f"Cannot save {model_type}: it is not fitted. Call fit() before modelkeep.save()."
        )


class SampleMismatchError(ModelkeepError, ValueError):
    """``save()``'s sample does not match the model's inputs."""

    def __init__(
        self,
        problem: str,
        missing: Iterable[str] = (),
        unexpected: Iterable[str] = (),
    ) -> None:
        self.missing = tuple(sorted(missing))
        self.unexpected = tuple(sorted(unexpected))
        parts = [problem]
        if self.missing:
            parts.append(
                f"columns the model was fitted on but missing from sample: "
                f"{format_names(self.missing)}"
            )
        if self.unexpected:
            parts.append(
                f"columns in sample the model was not fitted on: {format_names(self.unexpected)}"
            )
        super().__init__(
            "; ".join(parts) + ". Pass as sample= the data the model was fitted on "
            "(or rows of it), with the same columns."
        )


class LabelMapError(ModelkeepError, ValueError):
    """``labels=`` does not cover exactly the model's classes."""

    def __init__(self, classes: Sequence[object], keys: Sequence[object]) -> None:
        self.classes = tuple(classes)
        self.keys = tuple(keys)
        missing = [c for c in classes if c not in keys]
        extra = [k for k in keys if k not in classes]
        detail = []
        if missing:
            detail.append(f"missing {', '.join(map(repr, missing))}")
        if extra:
            detail.append(f"not classes of the model {', '.join(map(repr, extra))}")
        super().__init__(
            f"labels: keys expected exactly the model's classes "
            f"[{', '.join(map(repr, classes))}], got [{', '.join(map(repr, keys))}] "
            f"({'; '.join(detail)}). Give one business label per class."
        )


class SchemaError(ModelkeepError, ValueError):
    """Prediction input that does not fit the model's feature schema."""

    def __init__(
        self,
        message: str,
        *,
        column: str | None = None,
        row: int | None = None,
        value: Any = None,
        kind: str = "invalid",
    ) -> None:
        self.column = column
        self.row = row
        self.value = value
        self.kind = kind
        super().__init__(message)


class InvalidChoiceError(ModelkeepError, ValueError):
    """An option given a value outside the ones it accepts."""

    def __init__(self, name: str, known: Iterable[str], context: str) -> None:
        self.name = name
        self.known = tuple(sorted(known))
        self.context = context
        super().__init__(
            f"{context}: expected one of {', '.join(map(repr, self.known))}, got {name!r}."
        )


class UnknownFormatError(InvalidChoiceError):
    """A format name that is not registered."""

    def __init__(self, name: str, known: Iterable[str], context: str = "format") -> None:
        super().__init__(name, known, context)


class MissingDependencyError(ModelkeepError, ImportError):
    """An optional dependency is needed for a feature and is not installed."""

    def __init__(self, feature: str, packages: str, extra: str) -> None:
        self.extra = extra
        super().__init__(f"{feature} needs {packages}: pip install 'modelkeep[{extra}]'")


class ModelkeepWarning(UserWarning):
    """Base class of every warning modelkeep emits."""


class EnvironmentMismatchWarning(ModelkeepWarning):
    """The environment differs from the recorded one (``env="warn"``)."""

    def __init__(self, differences: Sequence[EnvironmentDifference]) -> None:
        self.differences = tuple(differences)
        super().__init__(
            "Environment differs from the one the model was saved in: "
            f"{_describe_differences(self.differences)}. Golden samples are replayed to "
            "check predictions; load with env='strict' to refuse instead."
        )


class SchemaWarning(ModelkeepWarning):
    """Input that was accepted but is unusual for the model (``strict=False``).

    ``kind`` is one of ``"extra_columns"``, ``"unseen_categories"``, ``"out_of_range"``,
    ``"unexpected_missing"``; ``column`` names the column (None for extra columns) and
    ``values`` holds the offending values or names.
    """

    def __init__(self, message: str, *, kind: str, column: str | None, values: Sequence[Any]):
        self.kind = kind
        self.column = column
        self.values = tuple(values)
        super().__init__(message)

"""``convert()``: add a converted artifact (ONNX) to an existing bundle, atomically.

The bundle's model is loaded through every check of :func:`modelkeep._bundle.load`,
converted and measured against itself (golden samples, ``validation`` rows, probes), and
the bundle is rewritten beside itself and swapped into place: the original artifacts are
copied byte for byte (their hashes are checked while copying), the manifest gains the new
artifact with its hash and parity report, nothing else in it changes. A signature
(``model.sig``) no longer matches the new manifest, so it is not carried over: sign again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelkeep._bundle import load
from modelkeep._dump import DumpContext
from modelkeep._formats import available_formats, get_format
from modelkeep._fs import write_file
from modelkeep._modes import EnvMode
from modelkeep._optional import require
from modelkeep._reader import SIGNATURE_NAME, open_bundle
from modelkeep._writer import staged_bundle, write_artifact, write_manifest
from modelkeep.errors import (
    InvalidArgumentError,
    InvalidChoiceError,
    ManifestError,
    UnknownFormatError,
)
from modelkeep.manifest import MANIFEST_NAME, Artifact, Manifest
from modelkeep.onnx.report import ParityReport

if TYPE_CHECKING:
    from modelkeep.onnx.report import ParityThresholds

__all__ = ["Conversion", "convert", "read_validation"]

_NOT_CARRIED = frozenset({MANIFEST_NAME, SIGNATURE_NAME})


@dataclass(frozen=True)
class Conversion:
    """What :func:`convert` did: the bundle's new ``manifest``, the ``artifact`` it added,
    and that artifact's ``parity`` report (None for a format that records none)."""

    manifest: Manifest
    artifact: Artifact
    parity: ParityReport | None

    @classmethod
    def of(cls, manifest: Manifest) -> Conversion:
        """The conversion that added ``manifest``'s last artifact (as read back from a
        bundle or a registered version)."""
        artifact = manifest.artifacts[-1]
        report = artifact.details.get("parity")
        parity = ParityReport.model_validate(report) if isinstance(report, Mapping) else None
        return cls(manifest=manifest, artifact=artifact, parity=parity)


def convert(
    path: str | os.PathLike[str],
    *,
    to: str = "onnx",
    validation: Any = None,
    parity: ParityThresholds | None = None,
    force: bool = False,
    trusted: Sequence[str] | None = None,
    env: EnvMode = "warn",
) -> Conversion:
    """Convert the bundle's model to format ``to`` and add the artifact to the bundle.

    Args:
        path: the bundle directory.
        to: the format to add (``"onnx"``).
        validation: rows to measure the conversion on besides the golden samples and the
            generated probes: a DataFrame with the model's columns (others are ignored),
            or the path of a ``.csv`` or ``.parquet`` file holding them. Without it only
            the golden samples and the probes built on them are compared.
        parity: thresholds of the parity check (default ``ParityThresholds()``).
        force: write a conversion that fails its parity check, marked as failed.
        trusted, env: as for :func:`modelkeep.load` of the original artifact.

    Returns:
        A :class:`Conversion`: the bundle's new manifest, the added artifact and its
        parity report.

    Raises:
        InvalidChoiceError: the bundle already holds ``to``, or holds nothing to convert
            from, or ``validation`` is a file neither ``.csv`` nor ``.parquet``;
        InvalidArgumentError: the ``validation`` file cannot be read.
        UnknownFormatError, UnconvertibleModelError, ParityError, and every error of
            :func:`modelkeep.load`. The bundle is unchanged when any is raised.

    Example:
        >>> modelkeep.convert("churn_model", to="onnx", validation=X_valid).parity.passed
        True
    """
    target = Path(path)
    if to not in available_formats():
        raise UnknownFormatError(to, available_formats(), context="to")
    validation = read_validation(validation)
    original = load(target, env=env, trusted=trusted, format=_source_format(target, to))
    manifest = original.manifest
    context = DumpContext(
        features=manifest.features,
        task=manifest.task,
        classes=manifest.target.classes,
        golden=manifest.golden,
        labels=[e.label for e in manifest.target.labels] if manifest.target.labels else None,
        validation=validation,
        parity=parity,
        force=force,
    )
    with open_bundle(target) as reader:
        if reader.manifest() != manifest:
            raise ManifestError(
                str(target / MANIFEST_NAME), "changed while the model was being converted"
            )
        with staged_bundle(target, replace=True) as staging:
            for artifact in manifest.artifacts:
                # read_artifact checks size and hash: the copy is the recorded bytes.
                write_file(staging / artifact.path, reader.read_artifact(artifact))
            for name in reader.files:
                if "/" not in name and name not in _NOT_CARRIED:
                    write_file(staging / name, reader.read(name))
            added = write_artifact(original.estimator, staging, to, context)
            updated = manifest.model_copy(update={"artifacts": [*manifest.artifacts, added]})
            write_manifest(staging, updated)
    return Conversion.of(updated)


def _source_format(target: Path, to: str) -> str:
    """The first artifact that is the model itself (not a conversion) to convert from."""
    with open_bundle(target) as reader:
        manifest = reader.manifest()
    formats = [a.format for a in manifest.artifacts]
    if to in formats:
        raise InvalidChoiceError(
            to,
            ["a format the bundle does not hold yet"],
            f"to (bundle {str(target)!r} already holds {to!r})",
        )
    for name in formats:
        if name in available_formats() and not get_format(name).converted:
            return name
    raise InvalidChoiceError(
        ", ".join(formats), ["a bundle holding the model itself (skops)"], "convert"
    )


_READERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def read_validation(validation: Any) -> Any:
    """``validation`` as rows: a path of a ``.csv`` or ``.parquet`` file is read.

    Anything else (a DataFrame, records, None) is returned as it is.

    Raises:
        InvalidChoiceError: a path with another suffix.
        InvalidArgumentError: the file is missing or cannot be read as its suffix says.
        MissingDependencyError: a Parquet file without pyarrow installed.
    """
    if not isinstance(validation, str | os.PathLike):
        return validation
    path = Path(validation)
    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise InvalidChoiceError(str(path), [".csv", ".parquet"], "validation file type")
    import pandas as pd

    if kind != "csv":
        require("parquet", "pyarrow", feature="Reading a Parquet validation file")
    try:
        if kind == "csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except Exception as exc:  # pandas' and pyarrow's errors share no useful base class
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise InvalidArgumentError(
            "validation",
            f"a readable {kind.upper() if kind == 'csv' else 'Parquet'} file of rows with "
            "the model's columns",
            f"{str(path)!r}, which cannot be read ({type(exc).__name__}: {first})",
            "Check the path and the file's contents, or pass a DataFrame.",
        ) from exc

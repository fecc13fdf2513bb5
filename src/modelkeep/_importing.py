"""Bring a legacy ``.joblib`` or ``.pkl`` file into a bundle, never loading it unsafely."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modelkeep._bundle import save
from modelkeep._inputs import plain_values
from modelkeep._optional import require
from modelkeep.errors import InvalidChoiceError
from modelkeep.manifest import Manifest
from modelkeep.safety.joblib_layout import MAX_DECOMPRESSED_BYTES
from modelkeep.safety.loader import safe_load

__all__ = ["import_model", "match_labels", "read_sample"]


def import_model(
    model_file: str | os.PathLike[str],
    sample: Any,
    *,
    name: str,
    labels: Mapping[Any, str] | None = None,
    out: str | os.PathLike[str] | None = None,
    trusted: Sequence[str] | None = None,
    formats: Sequence[str] | None = None,
    overwrite: bool = False,
    max_inflated_bytes: int = MAX_DECOMPRESSED_BYTES,
    **save_options: Any,
) -> Manifest:
    """Load a legacy pickle or joblib file with :func:`modelkeep.safe_load` and save it as a
    bundle, so it gains a schema, golden samples and hashes.

    Args:
        model_file: the ``.joblib`` or ``.pkl`` file (compressed joblib files too).
        sample: the data the model was trained on (or rows of it): a DataFrame, or the path
            of a ``.csv`` or ``.parquet`` file.
        name: the bundle's model name.
        labels: model output -> business label; keys may be given as strings
            (``{"0": "No Churn"}``, as from JSON) and are matched to the model's classes.
        out: the bundle directory (default: ``name`` in the current directory).
        trusted: exact names to trust beyond the allowlist while loading the file.
        formats: artifact formats of the bundle (default: the file's own, ``"joblib"`` for a
            joblib file and ``"pickle"`` otherwise, so the bundle loads as the file did).
        max_inflated_bytes: what a compressed file may inflate to (default 1 GiB), as in
            :func:`modelkeep.safe_load`.
        overwrite, save_options: passed to :func:`modelkeep.save` (``metrics=``,
            ``data_version=``, ``description=``, ``tags=`` ...).

    Raises:
        Whatever :func:`modelkeep.safe_load` and :func:`modelkeep.save` raise; nothing is
        written unless the file loaded safely.

    Example:
        >>> modelkeep.import_model("legacy/churn.joblib", "train.csv", name="churn",
        ...                        labels={"0": "No Churn", "1": "Churn"})
    """
    source = Path(model_file)
    model = safe_load(source, trusted=trusted, max_inflated_bytes=max_inflated_bytes)
    frame = read_sample(sample)
    if formats is None:
        formats = [_source_format(source)]
    return save(
        model,
        Path(out) if out is not None else Path(name),
        sample=frame,
        name=name,
        labels=match_labels(model, labels) if labels is not None else None,
        formats=formats,
        overwrite=overwrite,
        **save_options,
    )


def _source_format(path: Path) -> str:
    with path.open("rb") as stream:
        head = stream.read(6)
    from modelkeep.safety.joblib_layout import LayoutError, detect_compression

    try:
        compressed = detect_compression(head)
    except LayoutError:
        compressed = None
    if compressed in ("zlib", "gzip", "lzma", "xz"):
        return f"joblib:{compressed}"
    if compressed is not None or path.suffix in (".joblib", ".jbl"):
        return "joblib"
    return "pickle"


def read_sample(sample: Any) -> Any:
    """A DataFrame from a DataFrame, or from the path of a ``.csv`` or ``.parquet`` file."""
    import pandas as pd

    if isinstance(sample, pd.DataFrame):
        return sample
    if not isinstance(sample, str | os.PathLike):
        raise InvalidChoiceError(
            type(sample).__name__, ["a DataFrame", "a .csv or .parquet path"], "sample"
        )
    path = Path(sample)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".parquet", ".pq"):
        require("parquet", "pyarrow", feature="Reading a Parquet sample")
        return pd.read_parquet(path)
    raise InvalidChoiceError(str(path), [".csv", ".parquet"], "sample file type")


def match_labels(model: Any, labels: Mapping[Any, str]) -> dict[Any, str]:
    """``labels`` with each key replaced by the model class it names.

    JSON object keys are strings; ``"0"`` names class ``0`` and ``"true"`` class ``True``.
    A key naming no class is kept as given, so :func:`modelkeep.save` reports it.
    """

    classes = getattr(model, "classes_", None)
    if classes is None:
        return dict(labels)
    values = plain_values(classes)
    matched: dict[Any, str] = {}
    for key, label in labels.items():
        if key in values and any(type(v) is type(key) for v in values):
            matched[key] = label
            continue
        text = str(key).lower() if isinstance(key, str) else None
        hits = [v for v in values if text is not None and str(v).lower() == text]
        matched[hits[0] if len(hits) == 1 else key] = label
    return matched

"""The manifest: the bundle's one source of truth, as pydantic models.

A manifest is written as canonical JSON (sorted keys, two-space indent, UTF-8, no NaN) to
``modelkeep.json``. Reading goes through one reader per format version
(:data:`READERS`), so an old bundle keeps loading after the format moves on.

Bumping the format version:
1. copy the current models you change into a ``_v<N>`` module, frozen as they were;
2. raise :data:`FORMAT_VERSION` and change the models here;
3. add a reader for the old version that converts its dict into the new models;
4. keep a bundle of the old version under ``tests/fixtures/`` and a test that loads it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelkeep.errors import ManifestError, UnsupportedFormatVersionError

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "MAX_MANIFEST_BYTES",
    "MAX_MANIFEST_DEPTH",
    "Artifact",
    "DataInfo",
    "Dtype",
    "Environment",
    "FeatureSpec",
    "GoldenSamples",
    "LabelEntry",
    "Lineage",
    "Manifest",
    "ProfileFeature",
    "ReferenceProfile",
    "Scalar",
    "Target",
    "Task",
    "dump_manifest",
    "read_manifest",
]

FORMAT_VERSION = 1
MANIFEST_NAME = "modelkeep.json"
# Bounds checked before the JSON parser runs: a manifest is a few kilobytes and about six
# levels deep; a crafted one of 100,000 nested '[' would otherwise be a RecursionError in the
# parser, and a huge one would be read whole into memory.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_MANIFEST_DEPTH = 64

Dtype = Literal["integer", "float", "boolean", "string", "category", "datetime"]
Task = Literal["binary", "multiclass", "regression"]
Scalar = bool | int | float | str


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Model):
    """One input column: its name, logical dtype and what was seen at training time.

    ``storage`` is the pandas dtype of the column in the sample (``"int64"``, ``"float64"``,
    ``"object"``, ``"str"``, ``"category"``, ``"bool"``, ``"datetime64[ns]"`` ...); inputs
    are coerced back to it so the pipeline sees what it was fitted on.
    """

    name: str
    dtype: Dtype
    storage: str
    nullable: bool
    categories: list[Scalar] | None = None
    min: float | None = None
    max: float | None = None


class LabelEntry(_Model):
    """One model output (a class value) and the business label it stands for."""

    value: Scalar
    label: str


class Target(_Model):
    """What the model predicts, and how its outputs map to business labels."""

    name: str | None = None
    classes: list[Scalar] | None = None
    labels: list[LabelEntry] | None = None


class Environment(_Model):
    """The environment the bundle was saved in."""

    python_version: str
    python_implementation: str
    platform: str
    packages: dict[str, str]
    requirements: list[str]


class Artifact(_Model):
    """One serialized copy of the model inside ``artifacts/``."""

    # A plain file name under artifacts/: a manifest cannot point a load outside the bundle.
    path: str = Field(pattern=r"^artifacts/[A-Za-z0-9_][A-Za-z0-9._-]*$")
    format: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    details: dict[str, Any] = Field(default_factory=dict)


class GoldenSamples(_Model):
    """Rows of the sample with the outputs the model gave at save time.

    ``inputs`` maps each feature to its values (JSON: missing values as null, datetimes as
    ISO 8601 strings); ``rows`` are the positions of these rows in the sample.
    """

    rows: list[int]
    inputs: dict[str, list[Any]]
    predictions: list[Any]
    probabilities: list[list[float]] | None = None

    def rows_at(self, positions: Any) -> list[int]:
        """Sample row numbers of the golden rows at ``positions`` (0-based in ``rows``)."""
        return [self.rows[int(p)] for p in positions]


class DataInfo(_Model):
    """The training data the schema and golden samples came from."""

    fingerprint: str
    n_rows: int
    data_version: str | None = None


class Lineage(_Model):
    """Where this version came from."""

    parent: str | None = None
    git_commit: str | None = None


class ProfileFeature(_Model):
    """One column's distribution in the reference sample (a feature or a model output).

    ``count`` rows were seen, ``missing`` of them empty. A ``numeric`` column keeps its
    ``min``, ``max``, ``mean``, ``std`` and bins: ``edges`` are the inner edges of
    right-closed bins with open outer bins (``(-inf, e0], (e0, e1], ..., (e_last, inf)``),
    so ``counts`` has one more entry than ``edges``. A ``categorical`` column keeps the
    count of each value (as text) up to a cap, and ``other`` for the rest.
    """

    name: str
    kind: Literal["numeric", "categorical"]
    count: int = Field(ge=0)
    missing: int = Field(ge=0)
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    edges: list[float] | None = None
    counts: list[int] | None = None
    categories: dict[str, int] | None = None
    other: int = 0


class ReferenceProfile(_Model):
    """The training sample's distributions, the reference that drift is measured against.

    ``features`` in the manifest's order; ``outputs`` the model's outputs on (up to
    ``output_rows`` of) the sample: ``prediction`` (the class, by business label when there
    is a label map) and ``probability:<label>`` per class, or ``prediction`` quantiles for a
    regression. Written by ``save()`` and ``modelkeep profile``; see ``modelkeep.monitor``.
    """

    bins: int
    category_cap: int
    rows: int
    output_rows: int
    features: list[ProfileFeature]
    outputs: list[ProfileFeature] = Field(default_factory=list)

    def feature(self, name: str) -> ProfileFeature | None:
        for spec in [*self.features, *self.outputs]:
            if spec.name == name:
                return spec
        return None


class Manifest(_Model):
    """Everything modelkeep knows about a saved model."""

    format_version: Literal[1] = 1
    name: str = Field(min_length=1)
    version: str
    created_at: datetime
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    modelkeep_version: str
    model_type: str
    task: Task
    features: list[FeatureSpec]
    target: Target
    metrics: dict[str, float] = Field(default_factory=dict)
    data: DataInfo
    lineage: Lineage = Field(default_factory=Lineage)
    environment: Environment
    artifacts: list[Artifact]
    golden: GoldenSamples
    # Optional and left out of the JSON when absent, so bundles saved before it existed
    # keep their exact bytes (and hash) when a manifest is written again.
    profile: ReferenceProfile | None = None

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def label_map(self) -> dict[Scalar, str] | None:
        """Model output -> business label, or None when the model has no label map."""
        if self.target.labels is None:
            return None
        return {entry.value: entry.label for entry in self.target.labels}

    def artifact(self, format: str) -> Artifact | None:
        for artifact in self.artifacts:
            if artifact.format == format:
                return artifact
        return None


def dump_manifest(manifest: Manifest) -> str:
    """Canonical JSON of a manifest: sorted keys, stable across runs."""
    data = manifest.model_dump(mode="json")
    if data.get("profile") is None:
        data.pop("profile", None)
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _read_v1(data: dict[str, Any]) -> Manifest:
    return Manifest.model_validate(data)


READERS: dict[int, Callable[[dict[str, Any]], Manifest]] = {1: _read_v1}


def parse_manifest(text: str, source: str) -> Manifest:
    """Parse manifest JSON through the reader for its format version.

    Raises:
        ManifestError: the text is larger than :data:`MAX_MANIFEST_BYTES`, nests deeper
            than :data:`MAX_MANIFEST_DEPTH`, is not JSON or not a valid manifest.
        UnsupportedFormatVersionError: its format version has no reader.
    """
    data = text.encode("utf-8", "surrogatepass")
    check_manifest_size(len(data), source)
    depth = _nesting_depth(data)
    if depth > MAX_MANIFEST_DEPTH:
        raise ManifestError(
            source,
            f"expected JSON nested at most {MAX_MANIFEST_DEPTH} levels deep, got {depth} "
            "levels; it was not parsed",
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(source, f"not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ManifestError(source, f"expected a JSON object, got {type(data).__name__}")
    found = data.get("format_version")
    reader = READERS.get(found) if isinstance(found, int) and not isinstance(found, bool) else None
    if reader is None:
        raise UnsupportedFormatVersionError(source, found, sorted(READERS))
    try:
        return reader(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise ManifestError(
            source, f"field {where!r}: {first['msg']} ({exc.error_count()} problem(s) in all)"
        ) from exc


def check_manifest_size(size: int, source: str) -> None:
    """:class:`ManifestError` when ``size`` bytes exceed :data:`MAX_MANIFEST_BYTES`."""
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError(
            source,
            f"expected at most {MAX_MANIFEST_BYTES:,} bytes, got {size:,} bytes or more; "
            "it was not parsed",
        )


def _nesting_depth(data: bytes) -> int:
    """The deepest nesting of ``[`` and ``{`` outside JSON strings, without parsing.

    Vectorized, so 16 MiB take a fraction of a second: a quote counts unless an odd run of
    backslashes precedes it, and a bracket counts when an even number of counted quotes
    precede it.
    """
    import numpy as np

    b = np.frombuffer(data, dtype=np.uint8)
    if b.size == 0:
        return 0
    quote = b == ord('"')
    backslash = b == ord("\\")
    if backslash.any():
        positions = np.arange(b.size, dtype=np.int32)
        # The index of the last non-backslash at or before each byte (-1: none).
        last_plain = np.maximum.accumulate(np.where(backslash, np.int32(-1), positions))
        run_before = np.zeros(b.size, dtype=np.int32)  # backslashes just before each byte
        run_before[1:] = positions[:-1] - last_plain[:-1]
        quote &= run_before % 2 == 0
    outside = np.cumsum(quote, dtype=np.int32) % 2 == 0 if quote.any() else True
    opening = ((b == ord("[")) | (b == ord("{"))) & outside
    closing = ((b == ord("]")) | (b == ord("}"))) & outside
    steps = opening.astype(np.int32) - closing
    return int(max(np.cumsum(steps, dtype=np.int32).max(), 0))


def read_manifest(bundle: Path) -> Manifest:
    """Read ``bundle/modelkeep.json``, as every reader of a bundle does.

    Raises:
        BundleNotFoundError: no bundle directory, or no manifest in it.
        BundleLayoutError: the bundle holds a symlink or special file anywhere.
        ManifestError: the manifest cannot be read or is invalid.
    """
    from modelkeep._reader import read_manifest  # it parses manifests with this module

    return read_manifest(bundle)

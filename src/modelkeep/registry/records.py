"""What the registry holds and hands back, as plain data: index records, versions, alias
moves and check findings.

:class:`VersionRecord` is one version's entry in the index as every metadata store keeps
it (``backends.py``); :class:`IndexedVersion` is that entry under its name and number, as
a store reads it back. :class:`ModelVersion` is what users get: the same data and where the
bundle is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypedDict

from modelkeep.manifest import Manifest, Scalar, read_manifest

__all__ = [
    "AliasEvent",
    "EnvironmentSummary",
    "FormatSummary",
    "IndexedVersion",
    "ModelVersion",
    "Problem",
    "ProblemKind",
    "VersionRecord",
]


class EnvironmentSummary(TypedDict):
    """The recorded environment, as the index keeps it."""

    python: str
    platform: str
    packages: dict[str, str]


class FormatSummary(TypedDict):
    """One artifact of a stored bundle: its format, file, size, hash and parity report."""

    format: str
    path: str
    size: int
    sha256: str
    parity: dict[str, Any] | None


@dataclass(frozen=True)
class VersionRecord:
    """One version's entry in the index: where its bundle is and what it holds.

    Written once at registration and never changed; the name and number it is filed
    under are the store's (see :class:`IndexedVersion`). ``to_row()`` is the form stores
    and registration records (``journal.py``) keep; ``from_row()`` reads it back.
    """

    folder: str
    manifest_sha256: str
    created_at: str
    registered_at: str
    registered_by: str
    task: str
    model_type: str
    metrics: dict[str, float]
    data_version: str | None
    data_fingerprint: str
    schema_hash: str
    label_map: list[list[Scalar]] | None
    environment: EnvironmentSummary
    formats: list[FormatSummary]
    parent: str | None
    git_commit: str | None
    tags: list[str]
    description: str | None
    source: str

    def to_row(self) -> dict[str, Any]:
        """The record as one flat row of JSON-serializable columns."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> VersionRecord:
        """The record in ``row`` (extra columns such as ``name`` or ``aliases`` ignored).

        Raises:
            KeyError: a column is missing.
        """
        return cls(**{name: row[name] for name in _RECORD_FIELDS})


_RECORD_FIELDS = tuple(f.name for f in fields(VersionRecord))


@dataclass(frozen=True)
class IndexedVersion:
    """A :class:`VersionRecord` under its name and version number, with the aliases that
    pointed to it when the store read it."""

    name: str
    version: int
    record: VersionRecord
    aliases: tuple[str, ...] = ()
    schema_version: int = 1

    @property
    def ref(self) -> str:
        """The exact reference, ``name:version``."""
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: its index entry, and where its bundle is stored.

    ``schema_version`` is the feature-schema version under its name: 1 for the first
    version, one more each time the feature schema differs from the previous version's.

    ``aliases`` are the aliases pointing to it when it was read. ``label_map`` is a list of
    ``[model output, business label]`` pairs (outputs keep their type: JSON object keys
    could not). ``environment`` summarises the recorded environment; ``formats`` lists each
    artifact's format, size, SHA-256 and parity report (if any).
    """

    name: str
    version: int
    path: Path
    manifest_sha256: str
    created_at: str
    registered_at: str
    registered_by: str
    task: str
    model_type: str
    metrics: dict[str, float]
    data_version: str | None
    data_fingerprint: str
    schema_hash: str
    label_map: list[list[Scalar]] | None
    environment: EnvironmentSummary
    formats: list[FormatSummary]
    parent: str | None
    git_commit: str | None
    tags: list[str]
    description: str | None
    source: str
    aliases: list[str] = field(default_factory=list)
    schema_version: int = 1

    @property
    def ref(self) -> str:
        """The exact reference of this version, ``name:version``."""
        return f"{self.name}:{self.version}"

    def manifest(self) -> Manifest:
        """The stored bundle's manifest."""
        return read_manifest(self.path)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable data (``path`` as a string)."""
        data = asdict(self)
        data["path"] = str(self.path)
        return data

    @classmethod
    def from_record(cls, indexed: IndexedVersion, path: Path) -> ModelVersion:
        """The version ``indexed`` names, its bundle stored at ``path``."""
        record = indexed.record
        return cls(
            name=indexed.name,
            version=indexed.version,
            path=path,
            manifest_sha256=record.manifest_sha256,
            created_at=record.created_at,
            registered_at=record.registered_at,
            registered_by=record.registered_by,
            task=record.task,
            model_type=record.model_type,
            metrics=record.metrics,
            data_version=record.data_version,
            data_fingerprint=record.data_fingerprint,
            schema_hash=record.schema_hash,
            label_map=record.label_map,
            environment=record.environment,
            formats=record.formats,
            parent=record.parent,
            git_commit=record.git_commit,
            tags=record.tags,
            description=record.description,
            source=record.source,
            aliases=list(indexed.aliases),
            schema_version=indexed.schema_version,
        )


@dataclass(frozen=True)
class AliasEvent:
    """One alias move in the audit log. ``from_version`` None: the alias was created;
    ``to_version`` None: it was removed."""

    id: int
    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    at: str
    by: str
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AliasEvent:
        """The move in ``data`` (a line of the alias log; other keys ignored).

        Raises:
            KeyError: a field is missing.
        """
        return cls(**{name: data[name] for name in _EVENT_FIELDS})


_EVENT_FIELDS = tuple(f.name for f in fields(AliasEvent))

#: What :meth:`Registry.check` can find; ``docs/design.md`` says what each means.
ProblemKind = Literal[
    "index_corrupt",
    "counter_missing",
    "counter_behind",
    "dangling_alias",
    "alias_log_broken",
    "alias_log_missing",
    "missing_folder",
    "manifest_changed",
    "artifact_changed",
    "record_missing",
    "unreferenced",
    "not_indexed",
    "unknown_folder",
]


@dataclass(frozen=True)
class Problem:
    """Something :meth:`Registry.check` found. ``kind`` names it; ``subject`` is the
    version reference, alias or folder concerned."""

    kind: ProblemKind
    subject: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}: {self.detail}"

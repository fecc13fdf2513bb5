"""What the registry hands back: versions, alias moves and check findings, as plain data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modelkeep.manifest import Manifest, read_manifest

__all__ = ["AliasEvent", "ModelVersion", "Problem"]


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: its index entry, and where its bundle is stored.

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
    label_map: list[list[Any]] | None
    environment: dict[str, Any]
    formats: list[dict[str, Any]]
    parent: str | None
    git_commit: str | None
    tags: list[str]
    description: str | None
    source: str
    aliases: list[str] = field(default_factory=list)

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
    def from_row(cls, row: dict[str, Any], path: Path) -> ModelVersion:
        fields = {k: v for k, v in row.items() if k != "folder"}
        return cls(path=path, **fields)


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


@dataclass(frozen=True)
class Problem:
    """Something :meth:`Registry.check` found. ``kind`` names it; ``subject`` is the
    version reference, alias or folder concerned."""

    kind: str
    subject: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}: {self.detail}"

"""The model registry: versions, aliases, lineage and diffs on an embedded store.

``Registry`` is the entry point; see :mod:`modelkeep.registry.api` for how registering
stays atomic under crashes and concurrent writers, and :mod:`modelkeep.registry.backends`
for the two seams it stores through (a metadata store and an artifact store).
"""

from modelkeep.registry.api import Registry, default_root
from modelkeep.registry.backends import ArtifactStore, MetadataStore
from modelkeep.registry.diff import ManifestDiff, VersionDiff
from modelkeep.registry.records import AliasEvent, ModelVersion, Problem
from modelkeep.registry.refs import Reference, parse_reference

__all__ = [
    "AliasEvent",
    "ArtifactStore",
    "ManifestDiff",
    "MetadataStore",
    "ModelVersion",
    "Problem",
    "Reference",
    "Registry",
    "VersionDiff",
    "default_root",
    "parse_reference",
]

"""The model registry: versions, aliases, lineage and diffs on an embedded store.

``Registry`` is the entry point; see :mod:`modelkeep.registry.api` for how registering
stays atomic under crashes and concurrent writers.
"""

from modelkeep.registry.api import Registry, default_root
from modelkeep.registry.records import AliasEvent, ModelVersion, Problem
from modelkeep.registry.refs import Reference, parse_reference

__all__ = [
    "AliasEvent",
    "ModelVersion",
    "Problem",
    "Reference",
    "Registry",
    "default_root",
    "parse_reference",
]

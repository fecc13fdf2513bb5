"""The registry's two seams: where its metadata lives and where its bundles live.

:class:`Registry` keeps the rules (the order of a registration, what a crash may leave,
what ``gc()`` may delete); a backend only stores. Two protocols, one module per
implementation:

``MetadataStore``
    the index: version numbers, version records, aliases and the alias log.
    ``store.SqlStore`` (SQLAlchemy Core; a SQLite file by default) and
    ``memory.MemoryStore`` (a dict, for tests and as the shortest example).
``ArtifactStore``
    the bundles themselves and the registration record beside each.
    ``artifacts.BundleFolders`` (folders on the local file system).

What a metadata store must guarantee, whatever holds it:

- ``add_version`` takes the name's next number and inserts the record atomically, calls
  ``before_commit(number)`` inside that transaction, and commits nothing if it raises;
  numbers are never given twice, even after ``delete_version`` (the counter stays). It
  gives the version its feature-schema version (``next_schema_version``).
- ``resolve`` follows a reference's number, alias or feature-schema version
  (``name?schema=N``: the newest version with that schema version).
- ``set_alias`` reads the current target, moves the alias and appends the move to the log
  in one transaction, with ``before_commit(event)`` called before the commit; a move to
  where the alias already points returns None and logs nothing.
- Unknown names, versions and aliases raise :class:`~modelkeep.errors.UnknownReferenceError`
  listing what the store does hold; an alias pointing to a version refuses its delete with
  :class:`~modelkeep.errors.VersionInUseError`; any failure of the storage itself raises
  :class:`~modelkeep.errors.RegistryIndexError` with the driver's error as its cause.

``tests/registry/test_registry_backends.py`` runs the same behaviour against every
metadata store; a new one joins that parametrization.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from modelkeep.registry.journal import Record, RecordState
from modelkeep.registry.records import AliasEvent, IndexedVersion, Problem, VersionRecord
from modelkeep.registry.refs import Reference

__all__ = [
    "ArtifactStore",
    "MetadataStore",
    "alias_log_problems",
    "counter_problem",
    "next_schema_version",
]


class MetadataStore(Protocol):
    """The registry's index. ``location`` names it in error messages."""

    location: str

    def close(self) -> None:
        """Release connections; the store may be used again afterwards."""

    def add_version(
        self, name: str, record: VersionRecord, *, before_commit: Callable[[int], None]
    ) -> int:
        """File ``record`` under ``name``'s next version number, atomically; return it."""
        ...

    def raise_counter(self, name: str, at_least: int) -> None:
        """Make ``name``'s next version number at least ``at_least`` (``Registry.copy_to``)."""
        ...

    def import_aliases(
        self, name: str, pointers: Mapping[str, int], moves: Sequence[AliasEvent]
    ) -> list[AliasEvent]:
        """Set ``name``'s aliases (alias -> version) and append ``moves`` to the log under
        new ids, atomically; return the logged moves (``Registry.copy_to``)."""
        ...

    def resolve(self, ref: Reference, text: str) -> IndexedVersion:
        """The version ``ref`` points to (``text`` is the reference as the user wrote it)."""
        ...

    def versions(
        self, name: str | None = None, *, latest_only: bool = False
    ) -> list[IndexedVersion]:
        """Versions (of ``name``, or of every name), by name then version."""
        ...

    def names(self) -> list[str]:
        """Every name with at least one version, sorted."""
        ...

    def delete_version(self, name: str, version: int, text: str) -> str:
        """Remove a version's record (refused while an alias points to it); its folder."""
        ...

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int | None,
        *,
        by: str,
        reason: str | None,
        before_commit: Callable[[AliasEvent], None],
    ) -> AliasEvent | None:
        """Point ``alias`` at ``version`` (None: remove it) and log the move, atomically."""
        ...

    def aliases(self, name: str) -> dict[str, int]:
        """Alias -> version for ``name``, sorted by alias."""
        ...

    def history(self, name: str | None, alias: str | None = None) -> list[AliasEvent]:
        """Alias moves for ``name`` (or one alias; every name for None), oldest first."""
        ...

    def counters(self) -> dict[str, int]:
        """Name -> the next version number it will be given."""
        ...

    def folders(self) -> dict[str, tuple[str, str]]:
        """Folder id -> (``name:version``, manifest SHA-256) for every indexed version."""
        ...

    def restore(
        self,
        entries: Sequence[IndexedVersion],
        counters: Mapping[str, int],
        pointers: Mapping[tuple[str, str], int],
        moves: Sequence[AliasEvent],
    ) -> None:
        """Fill an empty store in one transaction (``Registry.rebuild``)."""
        ...

    def consistency(self) -> list[Problem]:
        """Problems inside the index itself (``Registry.check``); it fixes none."""
        ...


class ArtifactStore(Protocol):
    """Where registered bundles live, each under a folder id, with its record beside it.

    A bundle is staged (a private, complete copy), then published under its folder id in
    one step; nothing is ever changed after that, only removed.
    """

    def path(self, folder: str) -> Path:
        """Where the registered bundle ``folder`` can be read."""
        ...

    def stage(self, source: Path) -> Path:
        """Copy the bundle at ``source`` into a new staging folder; return it."""
        ...

    def publish(self, staged: Path) -> str:
        """Make ``staged`` read-only and publish it whole; return its folder id."""
        ...

    def remove(self, folder: str) -> None:
        """Delete a published bundle (after its index entry is gone)."""
        ...

    def staging_path(self, entry: str) -> Path:
        """Where the staging entry ``entry`` lives (its age tells debris where there are
        no locks)."""
        ...

    def remove_staged(self, entry: str) -> None:
        """Delete a staging entry (an abandoned copy)."""
        ...

    def published(self) -> list[str]:
        """Every published folder id, sorted."""
        ...

    def staged(self) -> list[str]:
        """Every staging entry (in-flight or abandoned copies), sorted."""
        ...

    def write_record(
        self,
        folder: str,
        *,
        state: RecordState,
        name: str,
        version: int,
        record: VersionRecord,
    ) -> None:
        """Write (or replace) the registration record of ``folder``, atomically, durably."""
        ...

    def read_records(self) -> dict[str, Record]:
        """Folder id -> registration record, for every readable record."""
        ...

    def remove_record(self, name: str) -> None:
        """Delete a record (or a leftover temporary record) by its entry name."""
        ...

    def leftovers(self) -> list[str]:
        """Temporary record entries a crash left behind."""
        ...


def next_schema_version(previous: tuple[str, int] | None, schema_hash: str) -> int:
    """The feature-schema version of a name's next version, given the (schema hash,
    schema version) of its newest version (None: it has none). For every metadata store."""
    if previous is None:
        return 1
    return previous[1] if previous[0] == schema_hash else previous[1] + 1


# Checks every metadata store's ``consistency()`` shares, so each reports the same way.


def counter_problem(name: str, counter: int | None, top: int) -> Problem | None:
    """What is wrong with ``name``'s next-version ``counter`` (None: it has none) when its
    newest version is ``top``; None when nothing is. For every metadata store."""
    if counter is None:
        return Problem("counter_missing", name, "no version counter for this name")
    if counter <= top:
        return Problem(
            "counter_behind", name, f"next version counter {counter} is not above version {top}"
        )
    return None


def alias_log_problems(
    current: Mapping[tuple[str, str], int], moves: Sequence[AliasEvent]
) -> list[Problem]:
    """Where the alias log (``moves``, by id) breaks its chain or ends somewhere other than
    where each alias points now (``current``). For every metadata store."""
    problems: list[Problem] = []
    last: dict[tuple[str, str], int | None] = {}
    for move in moves:
        key = (move.name, move.alias)
        if last.get(key) != move.from_version:
            problems.append(
                Problem(
                    "alias_log_broken",
                    f"{move.name}@{move.alias}",
                    f"log entry {move.id} moves from {move.from_version}, but the "
                    f"previous entry left it at {last.get(key)}",
                )
            )
        last[key] = move.to_version
    for key in sorted(set(last) | set(current)):
        if last.get(key) != current.get(key):
            problems.append(
                Problem(
                    "alias_log_broken",
                    f"{key[0]}@{key[1]}",
                    f"alias points to {current.get(key)}, the log ends at {last.get(key)}",
                )
            )
    return problems

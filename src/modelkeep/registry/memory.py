"""A metadata store held in memory (``backends.MetadataStore``): for tests, and as the
shortest statement of what a store must do.

It keeps what ``store.SqlStore`` keeps (counters, version records, aliases, the alias log)
in dicts behind one lock, and gives the same answers and the same errors. A write runs
``before_commit`` before it changes anything, so a callback that raises leaves the store
as it was, as a rolled-back transaction would. Nothing survives the process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from modelkeep.errors import RegistryIndexError, UnknownReferenceError, VersionInUseError
from modelkeep.registry._time import utc_now
from modelkeep.registry.backends import (
    MetadataStore,
    alias_log_problems,
    counter_problem,
    next_schema_version,
)
from modelkeep.registry.records import AliasEvent, IndexedVersion, Problem, VersionRecord
from modelkeep.registry.refs import Reference

__all__ = ["MemoryStore"]


class MemoryStore:
    """An index in this process's memory. ``location`` names it in error messages."""

    def __init__(self, location: str = "memory") -> None:
        self.location = location
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}
        self._versions: dict[tuple[str, int], VersionRecord] = {}
        self._schemas: dict[tuple[str, int], int] = {}
        self._aliases: dict[tuple[str, str], int] = {}
        self._log: list[AliasEvent] = []

    def __repr__(self) -> str:
        return f"MemoryStore({self.location!r})"

    def close(self) -> None:
        """Nothing to release."""

    # --------------------------------------------------------------------------- versions

    def add_version(
        self, name: str, record: VersionRecord, *, before_commit: Callable[[int], None]
    ) -> int:
        """Assign ``name``'s next version number and file ``record`` under it, atomically."""
        with self._lock:
            if any(r.folder == record.folder for r in self._versions.values()):
                raise RegistryIndexError(
                    self.location,
                    f"registering a version of {name!r}",
                    ValueError(f"folder {record.folder!r} is indexed already"),
                )
            version = self._counters.get(name, 1)
            numbers = self._numbers(name)
            newest = (name, numbers[-1]) if numbers else None
            previous = (
                None
                if newest is None
                else (self._versions[newest].schema_hash, self._schemas.get(newest, 1))
            )
            before_commit(version)
            self._counters[name] = version + 1
            self._versions[(name, version)] = record
            self._schemas[(name, version)] = next_schema_version(previous, record.schema_hash)
        return version

    def raise_counter(self, name: str, at_least: int) -> None:
        """Make ``name``'s next version number at least ``at_least``."""
        with self._lock:
            self._counters[name] = max(self._counters.get(name, 1), at_least)

    def import_aliases(
        self, name: str, pointers: Mapping[str, int], moves: Sequence[AliasEvent]
    ) -> list[AliasEvent]:
        """Set ``name``'s aliases and append ``moves`` to the log under new ids."""
        with self._lock:
            for alias, version in pointers.items():
                self._aliases[(name, alias)] = version
            logged = []
            for move in moves:
                event = AliasEvent(**{**move.to_dict(), "id": len(self._log) + 1})
                self._log.append(event)
                logged.append(event)
            return logged

    def resolve(self, ref: Reference, text: str) -> IndexedVersion:
        """The version ``ref`` points to; :class:`UnknownReferenceError` if none."""
        with self._lock:
            numbers = self._numbers(ref.name)
            if not numbers:
                raise self._unknown(text, "name", ref.name, sorted(self._counters))
            if ref.alias is not None:
                target = self._aliases.get((ref.name, ref.alias))
                if target is None:
                    raise self._unknown(text, "alias", ref.name, list(self._held(ref.name)))
                version = target
            elif ref.version is not None:
                if ref.version not in numbers:
                    raise self._unknown(text, "version", ref.name, [str(n) for n in numbers])
                version = ref.version
            elif ref.schema is not None:
                held = {n: self._schemas.get((ref.name, n), 1) for n in numbers}
                matching = [n for n in numbers if held[n] == ref.schema]
                if not matching:
                    known = [str(s) for s in sorted(set(held.values()))]
                    raise self._unknown(text, "schema version", ref.name, known)
                version = matching[-1]
            else:
                version = numbers[-1]
            return self._row(ref.name, version)

    def versions(
        self, name: str | None = None, *, latest_only: bool = False
    ) -> list[IndexedVersion]:
        """Versions (with their aliases), by name then version."""
        with self._lock:
            keys = sorted(k for k in self._versions if name is None or k[0] == name)
            if latest_only:
                newest: dict[str, int] = {}
                for key_name, number in keys:
                    newest[key_name] = max(newest.get(key_name, 0), number)
                keys = sorted(newest.items())
            return [self._row(*key) for key in keys]

    def names(self) -> list[str]:
        """Every name that has at least one version."""
        with self._lock:
            return sorted({name for name, _ in self._versions})

    def delete_version(self, name: str, version: int, text: str) -> str:
        """Remove a version's record; return its folder. Refused while an alias points to it."""
        with self._lock:
            found = self._row(name, version)
            if found.aliases:
                raise VersionInUseError(text, list(found.aliases))
            del self._versions[(name, version)]
            return found.record.folder

    # ---------------------------------------------------------------------------- aliases

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
        with self._lock:
            if version is not None and (name, version) not in self._versions:
                numbers = self._numbers(name)
                if not numbers:
                    raise self._unknown(name, "name", name, sorted(self._counters))
                raise self._unknown(f"{name}:{version}", "version", name, [str(n) for n in numbers])
            current = self._aliases.get((name, alias))
            if current == version:
                if version is None:
                    raise self._unknown(f"{name}@{alias}", "alias", name, list(self._held(name)))
                return None
            event = AliasEvent(
                id=self._log[-1].id + 1 if self._log else 1,
                name=name,
                alias=alias,
                from_version=current,
                to_version=version,
                at=utc_now(),
                by=by,
                reason=reason,
            )
            before_commit(event)
            if version is None:
                del self._aliases[(name, alias)]
            else:
                self._aliases[(name, alias)] = version
            self._log.append(event)
            return event

    def aliases(self, name: str) -> dict[str, int]:
        """Alias -> version for ``name``, sorted by alias."""
        with self._lock:
            return self._held(name)

    def history(self, name: str | None, alias: str | None = None) -> list[AliasEvent]:
        """Alias moves for ``name`` (or one alias; every name for None), oldest first."""
        with self._lock:
            return [
                e
                for e in self._log
                if (name is None or e.name == name) and (alias is None or e.alias == alias)
            ]

    # ------------------------------------------------------------------------ consistency

    def counters(self) -> dict[str, int]:
        """Name -> the next version number it will be given."""
        with self._lock:
            return dict(self._counters)

    def folders(self) -> dict[str, tuple[str, str]]:
        """Folder id -> (``name:version``, manifest SHA-256) for every indexed version."""
        with self._lock:
            return {
                r.folder: (f"{name}:{version}", r.manifest_sha256)
                for (name, version), r in self._versions.items()
            }

    def restore(
        self,
        entries: Sequence[IndexedVersion],
        counters: Mapping[str, int],
        pointers: Mapping[tuple[str, str], int],
        moves: Sequence[AliasEvent],
    ) -> None:
        """Fill an empty store: versions, counters, aliases and the alias log."""
        with self._lock:
            self._counters.update(counters)
            self._versions.update({(e.name, e.version): e.record for e in entries})
            self._schemas.update({(e.name, e.version): e.schema_version for e in entries})
            self._aliases.update(pointers)
            self._log.extend(sorted(moves, key=lambda e: e.id))

    def consistency(self) -> list[Problem]:
        """Counters behind their versions, aliases pointing nowhere, a broken alias log."""
        with self._lock:
            newest: dict[str, int] = {}
            for name, number in self._versions:
                newest[name] = max(newest.get(name, 0), number)
            problems = [
                problem
                for name, top in sorted(newest.items())
                if (problem := counter_problem(name, self._counters.get(name), top)) is not None
            ]
            problems += [
                Problem("dangling_alias", f"{name}@{alias}", f"points to missing version {version}")
                for (name, alias), version in sorted(self._aliases.items())
                if (name, version) not in self._versions
            ]
            return problems + alias_log_problems(self._aliases, self._log)

    # ---------------------------------------------------------------------------- helpers

    def _numbers(self, name: str) -> list[int]:
        return sorted(v for n, v in self._versions if n == name)

    def _held(self, name: str) -> dict[str, int]:
        return {a: v for (n, a), v in sorted(self._aliases.items()) if n == name}

    def _row(self, name: str, version: int) -> IndexedVersion:
        record = self._versions.get((name, version))
        if record is None:
            numbers = [str(n) for n in self._numbers(name)]
            raise self._unknown(f"{name}:{version}", "version", name, numbers)
        pointing = tuple(
            a for (n, a), v in sorted(self._aliases.items()) if (n, v) == (name, version)
        )
        return IndexedVersion(
            name, version, record, pointing, self._schemas.get((name, version), 1)
        )

    def _unknown(self, text: str, kind: str, name: str, known: list[str]) -> UnknownReferenceError:
        return UnknownReferenceError(
            text, kind=kind, name=name, registry=self.location, known=known
        )


if TYPE_CHECKING:  # mypy proves here that the class satisfies the protocol

    def _conforms(store: MemoryStore) -> MetadataStore:
        return store

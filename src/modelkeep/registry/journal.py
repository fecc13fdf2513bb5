"""The store's own account of what it holds, so the index can be rebuilt from it.

Layout under the registry root, beside the bundle folders (see ``artifacts.py``)::

    bundles/<id>.json   the registration record of bundles/<id>/ (read-only JSON)
    alias-log.jsonl     every alias move, one JSON object a line, oldest first

A record holds the name and version the bundle was registered as and its whole index row,
and a ``state`` that moves forward only:

    pending    written, fsynced, inside the write transaction that takes the version
               number and before the row is inserted (see ``api.py``)
    committed  rewritten once the row is committed
    deleted    rewritten once a delete has removed the row; the folder goes next, the
               record stays as a tombstone so the number is never given again

Every write replaces the whole file (temporary file, fsync, rename, fsync of the folder),
so a record is never half-written. An alias move is appended to the log, and fsynced,
inside its transaction after its row got its id and before the commit: a move the index
holds is always in the log. A move whose transaction then fails stays in the log, and the
next move reuses its id (SQLite gives a rolled-back rowid again); readers keep the last
line of each id.

A team registry journals in its object store instead (``remote.py``): records as
``records/<id>.json`` in the same format, and each alias move as ``aliases/<id>.json``.
PostgreSQL never gives a rolled-back id again, so there a failed move's object is not
superseded: ``gc()`` removes it once the index holds a later move and an hour has passed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypedDict

from modelkeep._fs import fsync_dir

__all__ = [
    "ALIAS_LOG_NAME",
    "RECORD_FORMAT",
    "Record",
    "RecordState",
    "append_alias_move",
    "fsync_dir",
    "leftovers",
    "make_record",
    "parse_record",
    "read_alias_log",
    "read_record",
    "read_records",
    "record_path",
    "remove_record",
    "write_alias_log",
    "write_record",
]

ALIAS_LOG_NAME = "alias-log.jsonl"
RECORD_FORMAT = 1
_SUFFIX = ".json"
_TEMPORARY = ".tmp"
# Held by the record itself (name, version, folder) or not part of the index row.
_NOT_IN_ROW = ("folder", "aliases", "name", "version")

#: Where a registration stands; a record's state only moves forward.
RecordState = Literal["pending", "committed", "deleted"]


class Record(TypedDict):
    """A record as stored. ``row`` is the version's index row without its folder (see
    ``records.VersionRecord.to_row``), as JSON."""

    record_format: int
    state: RecordState
    name: str
    version: int
    folder: str
    row: dict[str, Any]


def record_path(bundles: Path, folder: str) -> Path:
    """Where the record of ``bundles/<folder>/`` lives."""
    return bundles / f"{folder}{_SUFFIX}"


def write_record(
    bundles: Path,
    folder: str,
    *,
    state: RecordState,
    name: str,
    version: int,
    row: Mapping[str, Any],
) -> None:
    """Write (or replace) the record of ``folder`` atomically and durably."""
    record = make_record(folder, state=state, name=name, version=version, row=row)
    target = record_path(bundles, folder)
    temporary = target.with_name(target.name + _TEMPORARY)
    with temporary.open("w", encoding="utf-8") as writer:
        json.dump(record, writer, ensure_ascii=False, sort_keys=True)
        writer.flush()
        os.fsync(writer.fileno())
    os.chmod(temporary, 0o444)
    os.replace(temporary, target)
    fsync_dir(bundles)


def make_record(
    folder: str, *, state: RecordState, name: str, version: int, row: Mapping[str, Any]
) -> Record:
    """The record of ``folder`` as stored (every artifact store writes this)."""
    return {
        "record_format": RECORD_FORMAT,
        "state": state,
        "name": name,
        "version": version,
        "folder": folder,
        "row": {k: v for k, v in row.items() if k not in _NOT_IN_ROW},
    }


def read_record(bundles: Path, folder: str) -> Record | None:
    """The record of ``folder``; None when it has none or it cannot be read."""
    try:
        data = json.loads(record_path(bundles, folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return parse_record(data, folder)


def parse_record(data: object, folder: str) -> Record | None:
    """The record of ``folder`` in parsed JSON ``data``; None when it is not one."""
    if not isinstance(data, dict) or not _valid(data, folder):
        return None
    return {
        "record_format": data["record_format"],
        "state": data["state"],
        "name": data["name"],
        "version": data["version"],
        "folder": data["folder"],
        "row": data["row"],
    }


def read_records(bundles: Path) -> dict[str, Record]:
    """Folder id -> record, for every readable record in ``bundles/``."""
    try:
        names = sorted(entry.name for entry in os.scandir(bundles) if entry.is_file())
    except FileNotFoundError:
        return {}
    found: dict[str, Record] = {}
    for entry in names:
        if entry.endswith(_SUFFIX) and not entry.startswith("."):
            folder = entry[: -len(_SUFFIX)]
            record = read_record(bundles, folder)
            if record is not None:
                found[folder] = record
    return found


def leftovers(bundles: Path) -> list[str]:
    """Temporary record files a crash left behind (names in ``bundles/``)."""
    try:
        return sorted(e.name for e in os.scandir(bundles) if e.name.endswith(_TEMPORARY))
    except FileNotFoundError:
        return []


def remove_record(bundles: Path, name: str) -> None:
    """Delete a record file (or a temporary leftover) named ``name`` in ``bundles/``."""
    try:
        os.unlink(bundles / name)
    except FileNotFoundError:
        return
    fsync_dir(bundles)


def _valid(data: object, folder: str) -> bool:
    return (
        isinstance(data, dict)
        and data.get("record_format") == RECORD_FORMAT
        and data.get("state") in ("pending", "committed", "deleted")
        and isinstance(data.get("name"), str)
        and isinstance(data.get("version"), int)
        and data.get("folder") == folder
        and isinstance(data.get("row"), dict)
    )


# ------------------------------------------------------------------------------ alias log


def append_alias_move(root: Path, entry: Mapping[str, Any]) -> None:
    """Append one alias move (with its id) to the log and fsync it."""
    path = root / ALIAS_LOG_NAME
    created = not path.exists()
    line = json.dumps(dict(entry), ensure_ascii=False, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(root)


def write_alias_log(root: Path, entries: list[dict[str, Any]]) -> None:
    """Replace the log with ``entries`` (for an index written by an older modelkeep)."""
    path = root / ALIAS_LOG_NAME
    temporary = path.with_name(path.name + _TEMPORARY)
    with temporary.open("w", encoding="utf-8") as writer:
        for entry in entries:
            writer.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
        writer.flush()
        os.fsync(writer.fileno())
    os.replace(temporary, path)
    fsync_dir(root)


def read_alias_log(root: Path) -> list[dict[str, Any]]:
    """Every logged move, by id, keeping the last line of each id; [] without a log.

    A torn last line (a crash mid-append, before the commit) is skipped.
    """
    try:
        text = (root / ALIAS_LOG_NAME).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    by_id: dict[int, dict[str, Any]] = {}
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("id"), int):
            by_id[entry["id"]] = entry
    return [by_id[key] for key in sorted(by_id)]

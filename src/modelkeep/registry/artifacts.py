"""The default artifact store (``backends.ArtifactStore``): a folder of immutable bundle
copies.

Layout under the registry root::

    bundles/<id>/        one registered bundle each, read-only, named by a random id
    bundles/<id>.json    its registration record (``journal.py``)
    staging/<id>/        copies being written; never referenced by the index

A copy is written into ``staging/``, every file and folder fsynced, made read-only, then
renamed into ``bundles/`` in one step: a folder in ``bundles/`` is always complete. The
index row that makes it visible is written only after that rename (see ``api.py``), so a
row never points to a missing or partial folder. A crash leaves at most an unreferenced
folder, which ``gc()`` removes (``api.py`` says what it can prove to be debris).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from modelkeep._fs import fsync_dir
from modelkeep._reader import open_bundle
from modelkeep.errors import BundleNotFoundError
from modelkeep.manifest import MANIFEST_NAME
from modelkeep.registry import journal
from modelkeep.registry.journal import RecordState
from modelkeep.registry.records import VersionRecord

__all__ = ["BundleFolders"]

_READ_ONLY_FILE = 0o444
_READ_ONLY_DIR = 0o555


class BundleFolders:
    """Registered bundles on the local file system, one folder each."""

    def __init__(self, root: Path) -> None:
        self.bundles = root / "bundles"
        self.staging = root / "staging"

    def path(self, folder: str) -> Path:
        """Where the registered bundle ``folder`` lives."""
        return self.bundles / folder

    def stage(self, source: Path) -> Path:
        """Copy the bundle at ``source`` into a new staging folder; fsync everything.

        The copy is read through :func:`modelkeep._reader.open_bundle`: a bundle holding a
        symlink or special file anywhere is refused (``BundleLayoutError``) before anything
        is copied, so the stored copy cannot hold or point to anything outside the bundle.
        """
        with open_bundle(source) as reader:
            if MANIFEST_NAME not in reader.files:
                raise BundleNotFoundError(str(source), f"{MANIFEST_NAME} is missing")
            self.staging.mkdir(parents=True, exist_ok=True)
            staged = self.staging / uuid.uuid4().hex
            staged.mkdir()
            try:
                reader.copy_to(staged)
            except BaseException:
                remove_tree(staged)
                raise
        return staged

    def publish(self, staged: Path) -> str:
        """Make ``staged`` read-only and move it into ``bundles/``; return its folder id."""
        _make_read_only(staged)
        self.bundles.mkdir(parents=True, exist_ok=True)
        folder = staged.name
        os.rename(staged, self.bundles / folder)
        fsync_dir(self.bundles)
        fsync_dir(self.staging)
        return folder

    def remove(self, folder: str) -> None:
        """Delete a registered folder (after its index row is gone)."""
        remove_tree(self.bundles / folder)
        fsync_dir(self.bundles)

    def published(self) -> list[str]:
        """Every folder id in ``bundles/`` (not the records beside them)."""
        try:
            return sorted(e.name for e in os.scandir(self.bundles) if e.is_dir())
        except FileNotFoundError:
            return []

    def staged(self) -> list[str]:
        """Every entry in ``staging/`` (in-flight or abandoned copies)."""
        return _entries(self.staging)

    def staging_path(self, entry: str) -> Path:
        """Where the staging entry ``entry`` lives."""
        return self.staging / entry

    def remove_staged(self, entry: str) -> None:
        """Delete an entry of ``staging/`` (an abandoned copy)."""
        remove_tree(self.staging / entry)

    def write_record(
        self,
        folder: str,
        *,
        state: RecordState,
        name: str,
        version: int,
        record: VersionRecord,
    ) -> None:
        """Write (or replace) ``bundles/<folder>.json`` atomically and durably."""
        journal.write_record(
            self.bundles, folder, state=state, name=name, version=version, row=record.to_row()
        )

    def read_records(self) -> dict[str, journal.Record]:
        """Folder id -> registration record, for every readable record in ``bundles/``."""
        return journal.read_records(self.bundles)

    def remove_record(self, name: str) -> None:
        """Delete a record file (or a temporary leftover) named ``name`` in ``bundles/``."""
        journal.remove_record(self.bundles, name)

    def leftovers(self) -> list[str]:
        """Temporary record files a crash left in ``bundles/``."""
        return journal.leftovers(self.bundles)


def _entries(directory: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in os.scandir(directory))
    except FileNotFoundError:
        return []


def _make_read_only(root: Path) -> None:
    for directory, _, files in os.walk(root, topdown=False):
        for name in files:
            os.chmod(os.path.join(directory, name), _READ_ONLY_FILE)
        os.chmod(directory, _READ_ONLY_DIR)
    fsync_dir(root)


def remove_tree(path: Path) -> None:
    """Remove a folder this store made read-only (or a half-written one)."""
    if not path.exists():
        return
    for directory, _, _ in os.walk(path):
        os.chmod(directory, 0o755)
    shutil.rmtree(path)

"""A team registry streams large files: publishing a bundle to S3 (upload, then read back
to verify), and fetching it into the local cache (hashed as it downloads), never hold a
whole file in memory.

The store is the S3-compatible server ``scripts/services.sh start`` runs, under a fresh
prefix per test, removed afterwards (the server keeps objects for its lifetime). The tests
drive ``ObjectArtifacts`` directly with a staged folder built here: going through
``Registry.register`` would load (verify) a 128 MiB model first. The staged folder holds
what ``publish`` needs, a manifest file and an artifact; the cache does not read the
manifest's contents.

Memory is measured with ``tracemalloc`` (every Python allocation: the bytes objects s3fs,
aiobotocore and aiohttp make for request and response bodies). The bound is a quarter of
the file's size: s3fs's defaults (one PUT of a file below 100 MiB, else 50 MiB parts read
ten at a time) peaked above twice the file's size.
"""

from __future__ import annotations

import hashlib
import random
import re
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from modelkeep.errors import IntegrityError
from modelkeep.manifest import MANIFEST_NAME
from modelkeep.registry.remote import ObjectArtifacts

from .team import AWS, services

MIB = 1024 * 1024
LARGE = 128 * MIB
# Several read blocks and upload parts (remote.py: 4 MiB blocks, 8 MiB parts): the
# refusal comes at the end of a streamed download, not after a single read.
MEDIUM = 24 * MIB
ARTIFACT = "artifacts/weights.bin"
T = TypeVar("T")


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ObjectArtifacts]:
    """An artifact store under a new, empty S3 prefix; the prefix is removed afterwards."""
    found = services()
    for key in AWS:
        if key in found:
            monkeypatch.setenv(key, found[key])
    url = f"{found['MODELKEEP_ARTIFACTS_URI']}/streaming-{uuid.uuid4().hex[:16]}"
    artifacts = ObjectArtifacts(url, tmp_path / "registry")
    artifacts.published()  # connects: the client's one-off setup is not what is measured
    try:
        yield artifacts
    finally:
        if artifacts._fs.exists(artifacts._base):
            artifacts._fs.rm(artifacts._base, recursive=True)


def _staged(store: ObjectArtifacts, size: int, seed: int) -> tuple[Path, str]:
    """A staged bundle folder holding one ``size``-byte artifact of seeded random bytes,
    written in 1 MiB chunks; returns the folder and the artifact's SHA-256."""
    folder = store.staging_path(uuid.uuid4().hex)
    (folder / "artifacts").mkdir(parents=True)
    rng = random.Random(seed)
    digest = hashlib.sha256()
    with (folder / ARTIFACT).open("wb") as writer:
        for _ in range(size // MIB):
            chunk = rng.randbytes(MIB)
            digest.update(chunk)
            writer.write(chunk)
    sha = digest.hexdigest()
    manifest = f'{{"artifacts": {{"{ARTIFACT}": {{"sha256": "{sha}", "size": {size}}}}}}}'
    (folder / MANIFEST_NAME).write_text(manifest)
    return folder, sha


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as reader:
        while chunk := reader.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def _peak_memory(action: Callable[[], T]) -> tuple[T, int]:
    """What ``action`` returns, and the most memory Python held for it at any moment."""
    tracemalloc.start()
    try:
        result = action()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _cache_contents(store: ObjectArtifacts) -> list[str]:
    root = store.cache.root
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def test_a_large_file_is_uploaded_verified_and_downloaded_in_bounded_memory(
    store: ObjectArtifacts,
) -> None:
    staged, sha = _staged(store, LARGE, seed=17)

    folder, upload_peak = _peak_memory(lambda: store.publish(staged))
    cached, download_peak = _peak_memory(lambda: store.path(folder))

    bound = LARGE // 4
    assert upload_peak < bound, (
        f"publishing a {LARGE // MIB} MiB file held {upload_peak / MIB:.1f} MiB at its "
        f"peak (bound {bound // MIB} MiB): the upload or its read-back is not streamed"
    )
    assert download_peak < bound, (
        f"fetching a {LARGE // MIB} MiB file held {download_peak / MIB:.1f} MiB at its "
        f"peak (bound {bound // MIB} MiB): the download is not streamed"
    )
    listing = store.listing(folder)
    assert listing.files[ARTIFACT].size == LARGE
    assert listing.files[ARTIFACT].sha256 == sha
    assert store._fs.size(store._key("blobs", sha)) == LARGE
    assert cached == store.cache.entry(listing.manifest_sha256)
    assert (cached / ARTIFACT).stat().st_size == LARGE
    assert _sha256(cached / ARTIFACT) == sha
    assert _cache_contents(store) == [listing.manifest_sha256]  # no partial download left
    assert not staged.exists()  # publish removes the local copy


def test_a_blob_changed_in_the_store_is_refused_while_streaming_and_leaves_no_partial_file(
    store: ObjectArtifacts,
) -> None:
    staged, sha = _staged(store, MEDIUM, seed=18)
    altered = bytearray((staged / ARTIFACT).read_bytes())
    folder = store.publish(staged)
    listing = store.listing(folder)
    # Same size, one byte different, in the middle: only the hash can tell.
    altered[MEDIUM // 2] ^= 0xFF
    store._fs.pipe_file(store._key("blobs", sha), bytes(altered))
    got = hashlib.sha256(altered).hexdigest()

    message = (
        f"Artifact {ARTIFACT!r}: downloaded sha256 expected {sha}, got {got}. The file "
        "changed after it was saved; restore it or save the model again."
    )
    with pytest.raises(IntegrityError, match=re.escape(message)):
        store.path(folder)
    assert not store.cache.entry(listing.manifest_sha256).exists()
    assert _cache_contents(store) == []  # the partial download was removed

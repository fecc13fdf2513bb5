"""Writing a bundle: a staging directory swapped into place, artifacts, the manifest.

``save()`` and ``convert()`` write bundles here, on the file layer of ``_fs.py``: each
bundle is built whole in a staging directory beside its path and renamed into place, so
a reader finds the old bundle or the new one, never a mix.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modelkeep._dump import DumpContext
from modelkeep._formats import get_format
from modelkeep._fs import atomic_directory, fsync, sha256_stream, write_file
from modelkeep.manifest import MANIFEST_NAME, Artifact, Manifest, dump_manifest

__all__ = ["ARTIFACTS_DIR", "staged_bundle", "write_artifact", "write_manifest"]

ARTIFACTS_DIR = "artifacts"


@contextmanager
def staged_bundle(target: Path, *, replace: bool) -> Iterator[Path]:
    """A staging directory holding an empty ``artifacts/``, moved to ``target`` on success.

    Raises:
        BundleExistsError: not ``replace``, and a bundle appeared at ``target`` meanwhile.
    """
    with atomic_directory(target, replace=replace) as staging:
        (staging / ARTIFACTS_DIR).mkdir()
        yield staging


def write_artifact(
    model: Any, staging: Path, fmt_name: str, context: DumpContext | None = None
) -> Artifact:
    """Dump ``model`` in format ``fmt_name`` under ``staging/artifacts/``; hash and fsync it.

    A dump that fails leaves no file behind.
    """
    fmt = get_format(fmt_name)
    relative = f"{ARTIFACTS_DIR}/pipeline.{fmt.extension}"
    file = staging / relative
    try:
        details = fmt.dump(model, file, context=context)
    except BaseException:
        file.unlink(missing_ok=True)
        raise
    with file.open("rb") as stream:
        digest, size = sha256_stream(stream)
    fsync(file)
    return Artifact(path=relative, format=fmt.name, sha256=digest, size=size, details=details)


def write_manifest(staging: Path, manifest: Manifest) -> None:
    """Write ``manifest`` as canonical JSON at ``staging/modelkeep.json``."""
    write_file(staging / MANIFEST_NAME, dump_manifest(manifest).encode("utf-8"))

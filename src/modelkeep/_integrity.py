"""Hashes: artifact SHA-256 and the training-data fingerprint."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, BinaryIO

from modelkeep._fs import sha256_stream
from modelkeep.errors import IntegrityError
from modelkeep.manifest import Artifact

if TYPE_CHECKING:  # imported where used: loading a bundle needs no pandas
    import pandas as pd

__all__ = ["check_artifact", "fingerprint_frame", "sha256_stream"]


def check_artifact(artifact: Artifact, stream: BinaryIO) -> None:
    """Raise :class:`IntegrityError` unless ``stream`` holds exactly the recorded bytes.

    The size is compared first because it is free and names the likelier damage
    (truncation); the hash then catches any changed byte.
    """
    digest, size = sha256_stream(stream)
    if size != artifact.size:
        raise IntegrityError(artifact.path, "size", f"{artifact.size} bytes", f"{size} bytes")
    if digest != artifact.sha256:
        raise IntegrityError(artifact.path, "sha256", artifact.sha256, digest)


def fingerprint_frame(frame: pd.DataFrame) -> str:
    """A stable hash of a DataFrame's content: column names, dtypes and values, in order.

    The row index is left out: the same rows under a different index are the same data.
    """
    import pandas as pd

    digest = hashlib.sha256()
    for name in frame.columns:
        column = frame[name]
        digest.update(f"{name!s}\x00{column.dtype!s}\x00".encode())
        hashed = pd.util.hash_pandas_object(column, index=False, categorize=False)
        digest.update(hashed.to_numpy().tobytes())
    digest.update(f"rows={len(frame)}".encode())
    return "sha256:" + digest.hexdigest()

"""``artifacts/pipeline.joblib``: the model as ``joblib.dump`` writes it, optionally compressed
(zlib, gzip, lzma, xz), loaded only through the allowlist scan and the restricted unpickler.

Register names: ``"joblib"`` (uncompressed) and ``"joblib:zlib"``, ``"joblib:gzip"``,
``"joblib:lzma"``, ``"joblib:xz"``. All write the same artifact name and record the format
as ``"joblib"``; a load recognises the compression from the file's first bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from modelkeep._dump import DumpContext
from modelkeep._formats.estimator import EstimatorServing
from modelkeep._formats.pickle import artifact_details
from modelkeep.safety.loader import load_pickle_bytes

__all__ = ["COMPRESSIONS", "JoblibFormat"]

#: Compressions a bundle may use, each at joblib's default level 3.
COMPRESSIONS = ("zlib", "gzip", "lzma", "xz")
_LEVEL = 3


class JoblibFormat(EstimatorServing):
    """A ``joblib.dump`` of the fitted pipeline. Never loaded with ``joblib.load``."""

    name = "joblib"
    extension = "joblib"

    def __init__(self, compression: str | None = None) -> None:
        self.compression = compression

    def dump(
        self, model: object, path: Path, *, context: DumpContext | None = None
    ) -> dict[str, Any]:
        import joblib

        compress = (self.compression, _LEVEL) if self.compression else 0
        joblib.dump(model, path, compress=compress)
        return {
            "joblib_version": joblib.__version__,
            "compression": self.compression,
            **artifact_details(path),
        }

    def load(self, stream: BinaryIO, *, artifact: str, trusted: Sequence[str]) -> object:
        return load_pickle_bytes(stream.read(), artifact=artifact, trusted=trusted, format="joblib")

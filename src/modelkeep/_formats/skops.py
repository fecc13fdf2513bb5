"""The default format: skops' JSON-schema-plus-arrays zip, which never unpickles."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import skops.io as sio

from modelkeep._dump import DumpContext
from modelkeep._formats.estimator import EstimatorServing
from modelkeep.safety.skops_loader import load_skops

__all__ = ["SkopsFormat"]


class SkopsFormat(EstimatorServing):
    """``artifacts/pipeline.skops``, loaded with skops' trusted types plus reviewed ones."""

    name = "skops"
    extension = "skops"

    def dump(
        self, model: object, path: Path, *, context: DumpContext | None = None
    ) -> dict[str, Any]:
        sio.dump(model, path)
        needs = sorted(sio.get_untrusted_types(file=path))
        return {"skops_version": _skops_version(), "needs_trust": needs}

    def load(self, stream: BinaryIO, *, artifact: str, trusted: Sequence[str]) -> object:
        return load_skops(stream, artifact=artifact, trusted=trusted)


def _skops_version() -> str:
    from importlib.metadata import version

    return version("skops")

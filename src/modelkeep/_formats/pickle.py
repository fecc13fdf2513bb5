"""``artifacts/pipeline.pkl``: the model pickled with protocol 5, loaded only through the
allowlist scan and the restricted unpickler (:mod:`modelkeep.safety.loader`)."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from modelkeep._dump import DumpContext
from modelkeep._formats.estimator import EstimatorServing
from modelkeep.safety.loader import load_pickle_bytes
from modelkeep.safety.report import scan

__all__ = ["PROTOCOL", "PickleFormat", "artifact_details"]

PROTOCOL = 5


class PickleFormat(EstimatorServing):
    """A plain pickle of the fitted pipeline. Never unpickled without the allowlist."""

    name = "pickle"
    extension = "pkl"

    def dump(
        self, model: object, path: Path, *, context: DumpContext | None = None
    ) -> dict[str, Any]:
        with path.open("wb") as stream:
            pickle.dump(model, stream, protocol=PROTOCOL)
        return {"protocol": PROTOCOL, **artifact_details(path)}

    def load(self, stream: BinaryIO, *, artifact: str, trusted: Sequence[str]) -> object:
        return load_pickle_bytes(stream.read(), artifact=artifact, trusted=trusted, format="pickle")


def artifact_details(path: Path) -> dict[str, Any]:
    """What the manifest records about a pickle-based artifact: the globals it references,
    and those a loader must be told to trust (modelkeep never trusts them on its own)."""
    report = scan(path)
    needs = set(report.untrusted)
    needs |= {f"unsafe construct at byte {i.offset}: {i.problem}" for i in report.issues}
    return {
        "references": sorted({r.name for r in report.references}),
        "needs_trust": sorted(needs),
    }

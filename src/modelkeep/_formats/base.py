"""The interface every on-disk format implements: writing an artifact and serving it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from modelkeep._dump import DumpContext

if TYPE_CHECKING:
    from modelkeep.errors import EnvironmentDifference
    from modelkeep.manifest import Artifact, Manifest

__all__ = ["DumpContext", "Format"]


class Format(Protocol):
    """One way of serializing a fitted model to ``artifacts/pipeline.<extension>``, and of
    serving it back.

    ``dump`` writes the file and returns details worth recording in the manifest (for
    example the types a loader must trust). The rest is what the load sequence
    (``modelkeep._bundle``) asks of every format, in its order, without asking which format
    it holds: which environment differences matter, how to open the bytes, which of the
    manifest's claims the opened artifact confirms, how to replay the golden samples, what
    to warn of when the model is handed out, and how to describe it for ``verify``.

    ``serves`` names what :meth:`open` returns, hence which ``Model`` the load sequence
    builds over it: ``"estimator"`` (a scikit-learn estimator, for every pickle-based
    format and skops: :class:`~modelkeep._formats.estimator.EstimatorServing`) or
    ``"onnx"`` (an onnxruntime session). ``converted`` is True for a conversion of the
    model (ONNX), which cannot be converted again, False for the model itself.
    """

    name: str
    extension: str
    serves: str
    converted: bool

    def dump(
        self, model: object, path: Path, *, context: DumpContext | None = None
    ) -> dict[str, Any]: ...

    def environment_differences(
        self, manifest: Manifest, artifact: Artifact
    ) -> list[EnvironmentDifference]: ...

    def open(
        self,
        data: bytes,
        *,
        manifest: Manifest,
        artifact: Artifact,
        trusted: Sequence[str],
        options: Mapping[str, Any],
    ) -> Any: ...

    def claims(self, opened: Any, manifest: Manifest, *, source: str) -> list[str]: ...

    def replay_golden(
        self, opened: Any, manifest: Manifest, artifact: Artifact, *, atol: float
    ) -> int: ...

    def notices(self, artifact: Artifact) -> list[Warning]: ...

    def describe(self, opened: Any, artifact: Artifact) -> str: ...

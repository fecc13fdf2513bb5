"""The interface every on-disk format implements: writing an artifact and serving it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from modelkeep.errors import EnvironmentDifference
    from modelkeep.manifest import Artifact, FeatureSpec, GoldenSamples, Manifest, Scalar, Task

__all__ = ["DumpContext", "Format"]


@dataclass(frozen=True)
class DumpContext:
    """What a format may need besides the model to write a faithful artifact.

    A conversion (ONNX) builds its inputs from ``features`` and measures itself against the
    original (``classes`` and their business ``labels``, both None for a regressor) on the
    golden samples and ``validation`` rows (a DataFrame, or None) before
    writing. ``parity`` (thresholds, None for the defaults) and ``force`` (write even when
    parity fails, marked as failed) are the caller's options for that check. A format that
    copies the model as it is (skops) ignores the context.
    """

    features: Sequence[FeatureSpec]
    task: Task
    classes: Sequence[Scalar] | None
    golden: GoldenSamples
    labels: Sequence[str] | None = None
    validation: Any = None
    parity: Any = None
    force: bool = False


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

"""The interface every on-disk format implements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, runtime_checkable

if TYPE_CHECKING:
    from modelkeep.errors import EnvironmentDifference
    from modelkeep.manifest import Artifact, FeatureSpec, GoldenSamples, Manifest, Scalar, Task
    from modelkeep.model import Model

__all__ = ["DumpContext", "Format", "ServingFormat"]


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
    """One way of serializing a fitted model to ``artifacts/pipeline.<extension>``.

    ``dump`` writes the file and returns details worth recording in the manifest (for
    example the types a loader must trust). ``load`` deserializes from an open binary
    stream, trusting only what the format trusts by default plus ``trusted``; it raises
    :class:`modelkeep.errors.UntrustedTypesError` instead of constructing anything else.
    """

    name: str
    extension: str

    def dump(
        self, model: object, path: Path, *, context: DumpContext | None = None
    ) -> dict[str, Any]: ...

    def load(self, stream: BinaryIO, *, artifact: str, trusted: Sequence[str]) -> object: ...


@runtime_checkable
class ServingFormat(Protocol):
    """A format whose artifact runs without the training stack (ONNX through onnxruntime).

    The load sequence asks it, instead of treating the artifact as a scikit-learn
    estimator: which environment differences matter, how to open the bytes, how to replay
    the golden samples, and which :class:`~modelkeep.model.Model` to hand back.
    """

    def environment_differences(
        self, manifest: Manifest, artifact: Artifact
    ) -> list[EnvironmentDifference]: ...

    def open(
        self, data: bytes, *, manifest: Manifest, artifact: Artifact, options: Mapping[str, Any]
    ) -> Any: ...

    def replay_golden(
        self, runtime: Any, manifest: Manifest, artifact: Artifact, *, atol: float
    ) -> int: ...

    def model(
        self, runtime: Any, manifest: Manifest, artifact: Artifact, *, source: str
    ) -> Model: ...

    def describe(self, runtime: Any, artifact: Artifact) -> str: ...

"""The ONNX format: ``artifacts/pipeline.onnx``, converted, measured, and run by onnxruntime.

Writing converts the model (:func:`modelkeep.onnx.export.export`) and records the
conversion (strategy, opsets, converter versions, input types) and its parity report in
the artifact's ``details``. Loading runs it in onnxruntime behind the same
:class:`~modelkeep.model.Model` interface, importing neither scikit-learn, skops nor
pandas.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO

from modelkeep.errors import EnvironmentDifference, InvalidChoiceError, ParityWarning
from modelkeep.formats.base import DumpContext
from modelkeep.manifest import Artifact, Manifest
from modelkeep.model import Model

__all__ = ["OnnxFormat"]


class OnnxFormat:
    """``artifacts/pipeline.onnx``, written only when it passes its parity check."""

    name = "onnx"
    extension = "onnx"

    def dump(
        self, model: object, path: Path, *, context: DumpContext | None = None
    ) -> dict[str, Any]:
        if context is None:
            raise InvalidChoiceError(
                "context=None",
                ["a DumpContext: a conversion is measured against the golden samples"],
                "onnx dump",
            )
        from modelkeep.onnx.export import export

        exported = export(model, context)
        with path.open("wb") as stream:
            stream.write(exported.data)
        return {**exported.details, "narrowing": _narrowing_of(exported.data).details()}

    def load(self, stream: BinaryIO, *, artifact: str, trusted: Sequence[str]) -> object:
        """An onnxruntime InferenceSession over the file (``trusted`` does not apply)."""
        from modelkeep.errors import ArtifactError
        from modelkeep.onnx.runtime import SessionOptions, import_onnxruntime

        ort = import_onnxruntime()
        try:
            return ort.InferenceSession(
                stream.read(),
                SessionOptions().build(ort),
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:  # onnxruntime's errors share no useful base class
            raise ArtifactError(artifact, "onnx", exc) from exc

    # ServingFormat: what the load sequence asks of a format that runs on its own.

    def environment_differences(
        self, manifest: Manifest, artifact: Artifact
    ) -> list[EnvironmentDifference]:
        """The onnxruntime the parity check ran on vs the one installed.

        The training stack (Python, scikit-learn ...) does not run this artifact, so it
        is not compared.
        """
        conversion = artifact.details.get("conversion", {})
        packages = conversion.get("packages", {}) if isinstance(conversion, Mapping) else {}
        recorded = packages.get("onnxruntime") if isinstance(packages, Mapping) else None
        try:
            installed: str | None = metadata.version("onnxruntime")
        except metadata.PackageNotFoundError:
            installed = None
        if recorded == installed:
            return []
        return [EnvironmentDifference("onnxruntime", recorded, installed)]

    def open(
        self, data: bytes, *, manifest: Manifest, artifact: Artifact, options: Mapping[str, Any]
    ) -> Any:
        from modelkeep.onnx.inputs import Narrowing
        from modelkeep.onnx.runtime import OnnxRuntime

        return OnnxRuntime(
            data,
            artifact=artifact.path,
            features=manifest.features,
            classes=manifest.target.classes,
            options=options.get("session"),
            # Bundles written before narrowing was recorded have none (None).
            narrowing=Narrowing.from_details(artifact.details.get("narrowing")),
        )

    def replay_golden(
        self, runtime: Any, manifest: Manifest, artifact: Artifact, *, atol: float
    ) -> int:
        from modelkeep.onnx.runtime import replay_golden

        return replay_golden(runtime, manifest, artifact, atol=atol)

    def model(self, runtime: Any, manifest: Manifest, artifact: Artifact, *, source: str) -> Model:
        from modelkeep.onnx.model import OnnxModel
        from modelkeep.onnx.report import summarize
        from modelkeep.onnx.runtime import parity_report

        report = parity_report(artifact)
        if report is not None and not report.passed:
            warnings.warn(ParityWarning(artifact.path, summarize(report), report), stacklevel=4)
        return OnnxModel(runtime, manifest, format=self.name, source=source)

    def describe(self, runtime: Any, artifact: Artifact) -> str:
        conversion = artifact.details.get("conversion", {})
        strategy = conversion.get("strategy", "?") if isinstance(conversion, Mapping) else "?"
        opset = conversion.get("opset", "?") if isinstance(conversion, Mapping) else "?"
        try:
            version = metadata.version("onnxruntime")
        except metadata.PackageNotFoundError:  # pragma: no cover - it just ran
            version = "?"
        return (
            f"{artifact.path} loaded (onnx, opset {opset}, strategy {strategy}) in "
            f"onnxruntime {version}"
        )


def _narrowing_of(data: bytes) -> Any:
    """The :class:`~modelkeep.onnx.inputs.Narrowing` a converted graph's metadata holds."""
    import onnx

    from modelkeep.onnx.inputs import Narrowing

    graph = onnx.ModelProto.FromString(data)
    return Narrowing.from_metadata({p.key: p.value for p in graph.metadata_props})

"""The ONNX format: ``artifacts/pipeline.onnx``, converted, measured, and run by onnxruntime.

Writing converts the model (:func:`modelkeep.onnx.export.export`) and records the
conversion (strategy, opsets, converter versions, input types) and its parity report in
the artifact's ``details``. Loading opens it in onnxruntime
(:class:`~modelkeep.onnx.runtime.OnnxRuntime`), which the load sequence serves as an
``OnnxModel``, importing neither scikit-learn, skops nor pandas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from modelkeep._dump import DumpContext
from modelkeep.errors import EnvironmentDifference, InvalidChoiceError, ParityWarning
from modelkeep.manifest import Artifact, Manifest

__all__ = ["OnnxFormat"]


class OnnxFormat:
    """``artifacts/pipeline.onnx``, written only when it passes its parity check."""

    name = "onnx"
    extension = "onnx"
    serves = "onnx"
    converted = True

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
        self,
        data: bytes,
        *,
        manifest: Manifest,
        artifact: Artifact,
        trusted: Sequence[str],
        options: Mapping[str, Any],
    ) -> Any:
        """An :class:`~modelkeep.onnx.runtime.OnnxRuntime` over the bytes (``trusted`` does
        not apply: a graph references no code)."""
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

    def claims(self, opened: Any, manifest: Manifest, *, source: str) -> list[str]:
        # Its graph's inputs were compared with the features as it was opened.
        return ["features (graph inputs)"]

    def notices(self, artifact: Artifact) -> list[Warning]:
        """A ParityWarning for an artifact written past a failed parity check."""
        from modelkeep.onnx.report import summarize
        from modelkeep.onnx.runtime import parity_report

        report = parity_report(artifact)
        if report is not None and not report.passed:
            return [ParityWarning(artifact.path, summarize(report), report)]
        return []

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

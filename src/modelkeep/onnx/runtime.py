"""Running an ONNX artifact with onnxruntime: one session per model, numpy in and out.

Imports numpy, pydantic (through the manifest) and, when a session is created,
onnxruntime; never scikit-learn, skops, joblib or pandas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np

from modelkeep._optional import require
from modelkeep._replay import check_close, check_labels, check_values
from modelkeep.errors import ArtifactError
from modelkeep.manifest import Artifact, FeatureSpec, Manifest, Scalar
from modelkeep.onnx.inputs import InputPlan, Narrowing, plan_inputs, to_feeds
from modelkeep.onnx.report import ParityReport, ParityThresholds

__all__ = [
    "LABEL",
    "PROBABILITIES",
    "VALUE",
    "OnnxRuntime",
    "SessionOptions",
    "import_onnxruntime",
    "replay_golden",
]

#: Output names of every graph modelkeep writes.
LABEL = "label"
PROBABILITIES = "probabilities"
VALUE = "variable"

_ELEMENT_TYPES = {
    "double": "tensor(double)",
    "int64": "tensor(int64)",
    "bool": "tensor(bool)",
    "string": "tensor(string)",
}
_OPTIMIZATION = ("disable", "basic", "extended", "all")


def import_onnxruntime() -> ModuleType:
    """onnxruntime, or :class:`MissingDependencyError` naming the extra to install."""
    return require("onnx-runtime", "onnxruntime", feature="Running an ONNX artifact")


@dataclass(frozen=True)
class SessionOptions:
    """How the onnxruntime session of a loaded ONNX model runs.

    The defaults suit a prediction service answering a few records per call, usually one
    process per core: one thread per session, so a call does not wake a thread pool.
    Scoring large batches in one process, raise ``intra_op_threads`` (0: one per core).

    Attributes:
        intra_op_threads: threads used inside one operator (onnxruntime's
            ``intra_op_num_threads``); 0 lets onnxruntime choose.
        inter_op_threads: threads running independent operators in parallel.
        optimization: graph optimization level: ``"disable"``, ``"basic"``,
            ``"extended"`` or ``"all"``.
    """

    intra_op_threads: int = 1
    inter_op_threads: int = 1
    optimization: Literal["disable", "basic", "extended", "all"] = "all"

    def build(self, ort: ModuleType) -> Any:
        from modelkeep.errors import InvalidChoiceError

        for name in ("intra_op_threads", "inter_op_threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidChoiceError(repr(value), ["an integer >= 0"], name)
        if self.optimization not in _OPTIMIZATION:
            raise InvalidChoiceError(str(self.optimization), _OPTIMIZATION, "optimization")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = self.inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.optimization]
        options.log_severity_level = 3  # errors only: warnings would go to stderr
        return options


def onnx_label(value: Scalar) -> int | str:
    """How a class value appears in the graph's label output (int64 or string)."""
    if isinstance(value, str):
        return value
    return int(value)


class OnnxRuntime:
    """An onnxruntime session over an artifact's bytes, with its inputs checked.

    ``classes_`` holds the model's classes (None for a regressor), in the order of the
    manifest, which :meth:`positions` maps the graph's labels to.
    """

    def __init__(
        self,
        data: bytes,
        *,
        artifact: str,
        features: Sequence[FeatureSpec],
        classes: Sequence[Scalar] | None,
        options: SessionOptions | None = None,
        narrowing: Narrowing | None = None,
    ) -> None:
        ort = import_onnxruntime()
        self.artifact = artifact
        self.options = options or SessionOptions()
        session_options = self.options.build(ort)
        try:
            self.session = ort.InferenceSession(
                data, session_options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's errors share no useful base class
            raise ArtifactError(artifact, "onnx", exc) from exc
        # What the graph refuses: its own metadata, and what the manifest recorded.
        metadata = self.session.get_modelmeta().custom_metadata_map
        try:
            self.narrowing = Narrowing.from_metadata(metadata).union(narrowing)
        except ValueError as exc:
            raise ArtifactError(artifact, "onnx", exc) from exc
        self.plans: list[InputPlan] = plan_inputs(features, self.narrowing)
        self._check_signature()
        self.classes_ = None if classes is None else np.asarray(list(classes))
        self._lookup: dict[int | str, int] = {}
        if classes is not None:
            self._lookup = {onnx_label(c): i for i, c in enumerate(classes)}
        self.output_names = [o.name for o in self.session.get_outputs()]

    def _check_signature(self) -> None:
        got = {i.name: i.type for i in self.session.get_inputs()}
        expected = {p.name: _ELEMENT_TYPES[p.kind] for p in self.plans}
        if got != expected:
            raise ArtifactError(
                self.artifact,
                "onnx",
                ValueError(
                    f"graph inputs {sorted(got.items())} differ from the feature schema's "
                    f"{sorted(expected.items())}"
                ),
            )

    def feeds(self, X: object, *, strict: bool = False) -> tuple[dict[str, np.ndarray], int]:
        """``X`` validated against the schema, as the session's input arrays."""
        return to_feeds(X, self.plans, strict=strict)

    def run(
        self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Run the session; output name -> array."""
        names = list(outputs) if outputs is not None else self.output_names
        values = self.session.run(names, dict(feeds))
        return dict(zip(names, values, strict=True))

    def positions(self, labels: np.ndarray) -> np.ndarray:
        """Positions in ``classes_`` of the graph's label outputs."""
        lookup = self._lookup
        return np.fromiter(
            (lookup[v] for v in labels.ravel().tolist()), dtype=np.intp, count=labels.size
        )


def thresholds_of(artifact: Artifact) -> ParityThresholds:
    report = artifact.details.get("parity")
    if isinstance(report, Mapping) and isinstance(report.get("thresholds"), Mapping):
        return ParityThresholds.model_validate(report["thresholds"])
    return ParityThresholds()


def parity_report(artifact: Artifact) -> ParityReport | None:
    report = artifact.details.get("parity")
    if not isinstance(report, Mapping):
        return None
    return ParityReport.model_validate(report)


def replay_golden(
    runtime: OnnxRuntime, manifest: Manifest, artifact: Artifact, *, atol: float
) -> int:
    """Run the golden inputs through the session; compare with what the original gave.

    The tolerance is the larger of ``atol`` and the parity threshold the artifact was
    converted under (ONNX computes in float32 in places): probabilities within
    ``proba_atol``, regression outputs within ``regression_rtol`` relative to
    ``max(1, |value|)``; labels equal except on ties (the original's two highest
    probabilities within ``tie_tol``).
    """
    golden = manifest.golden
    n = len(golden.rows)
    if n == 0:
        return 0
    thresholds = thresholds_of(artifact)
    feeds, _ = runtime.feeds(golden.inputs)
    out = runtime.run(feeds)
    if runtime.classes_ is None:
        got = np.asarray(out[VALUE], dtype=np.float64).ravel()
        check_values(golden, got, tolerance=max(atol, thresholds.regression_rtol))
        return n
    want = np.asarray(golden.probabilities, dtype=np.float64)
    top = np.sort(want, axis=1)
    ties = (
        (top[:, -1] - top[:, -2] <= thresholds.tie_tol) if want.shape[1] > 1 else np.zeros(n, bool)
    )
    got_positions = runtime.positions(out[LABEL])
    expected_positions = np.array([runtime._lookup[onnx_label(p)] for p in golden.predictions])
    check_labels(golden, (got_positions != expected_positions) & ~ties)
    check_close(
        golden,
        np.asarray(out[PROBABILITIES], dtype=np.float64),
        tolerance=max(atol, thresholds.proba_atol),
    )
    return n

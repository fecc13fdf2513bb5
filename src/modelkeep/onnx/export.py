"""Convert a fitted model to ONNX, measure it, and keep it only if it matches the original.

:func:`export` is what ``save(formats=(..., "onnx"))`` and ``convert`` call:

1. check every step has a converter (:class:`UnconvertibleModelError` names the first that
   does not) and every feature an ONNX input type;
2. for each strategy of :data:`~modelkeep.onnx.strategies.STRATEGIES`, in order: build the
   graph (:func:`build_graph`), open it in onnxruntime, measure it against the original
   (:mod:`modelkeep.onnx.parity`); stop at the first that passes;
3. refuse with :class:`ParityError` when none passes, unless ``force``.

The graph takes one input per feature, named as the column, shaped ``(n, 1)``, of the
element type :func:`modelkeep.onnx.inputs.input_kind` gives it; a classifier outputs
``label`` and ``probabilities`` (a plain tensor, no ZipMap), a regressor ``variable``.
scikit-learn pipelines go through skl2onnx; XGBoost and LightGBM estimators (also inside a
pipeline) through onnxmltools' converters registered with skl2onnx.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Final

from modelkeep._dump import DumpContext
from modelkeep._optional import require
from modelkeep.errors import (
    ArtifactError,
    MissingDependencyError,
    ParityError,
    UnconvertibleModelError,
)
from modelkeep.manifest import FeatureSpec
from modelkeep.onnx.inputs import InputKind, UnsupportedFeatureError, input_kind
from modelkeep.onnx.narrowing import narrowing
from modelkeep.onnx.report import Attempt, ParityReport, ParityThresholds, render_report, summarize
from modelkeep.onnx.runtime import LABEL, PROBABILITIES, VALUE
from modelkeep.onnx.strategies import STRATEGIES, Strategy
from modelkeep.onnx.structure import final_estimator, qualname, takes_named_columns, walk
from modelkeep.onnx.trees import (
    CONVERSION_SECONDS,
    adjusted_thresholds,
    route_missing_values,
    time_limit,
)

__all__ = ["ML_OPSET", "Exported", "build_graph", "check_convertible", "export", "opset"]

#: ai.onnx.ml opset: 3 is the first with float64 tree thresholds (``*_as_tensor``).
ML_OPSET: Final = 3
PACKAGES: Final = ("onnx", "skl2onnx", "onnxmltools", "onnxruntime")
_FORMAT: Final = "onnx"


@dataclass(frozen=True)
class Exported:
    """A conversion that passed (or was forced past) its parity check."""

    data: bytes
    details: dict[str, Any]
    report: ParityReport


def require_packages() -> None:
    """Raise :class:`MissingDependencyError` unless the ``[onnx]`` extra is installed."""
    require(
        "onnx",
        "onnx",
        "onnxmltools",
        "onnxruntime",
        "skl2onnx",
        feature="ONNX conversion",
        packages="onnx, skl2onnx, onnxmltools and onnxruntime",
    )


def opset() -> int:
    """The default-domain opset: the newest both skl2onnx and onnx support."""
    import onnx
    import skl2onnx

    return int(min(skl2onnx.get_latest_tested_opset_version(), onnx.defs.onnx_opset_version()))


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


# ------------------------------------------------------------------------ converters


@functools.cache
def _register(package: str) -> None:
    """Register onnxmltools' converters for ``package``'s estimators with skl2onnx."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    if package == "lightgbm":
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        update_registered_converter(
            LGBMClassifier,
            "LightGbmLGBMClassifier",
            calculate_linear_classifier_output_shapes,
            convert_lightgbm,
            options={**classifier_options, "split": None},
        )
        update_registered_converter(
            LGBMRegressor,
            "LightGbmLGBMRegressor",
            calculate_linear_regressor_output_shapes,
            convert_lightgbm,
            options={"split": None},
        )
    elif package == "xgboost":
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor

        update_registered_converter(
            XGBClassifier,
            "XGBoostXGBClassifier",
            calculate_linear_classifier_output_shapes,
            convert_xgboost,
            options=classifier_options,
        )
        update_registered_converter(
            XGBRegressor,
            "XGBoostXGBRegressor",
            calculate_linear_regressor_output_shapes,
            convert_xgboost,
        )


def check_convertible(model: Any, features: Sequence[FeatureSpec]) -> list[InputKind]:
    """The input kind of each feature; :class:`UnconvertibleModelError` for the first problem.

    Caught before any conversion: a feature no ONNX input type carries, a
    FunctionTransformer running a user function, a class without a registered converter.
    """
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline
    from sklearn.preprocessing import FunctionTransformer

    kinds = []
    for spec in features:
        try:
            kinds.append(input_kind(spec))
        except UnsupportedFeatureError as exc:
            raise UnconvertibleModelError(
                _FORMAT, f"input column {spec.name!r}", f"{spec.dtype} ({spec.storage})", str(exc)
            ) from exc
    for path, step in walk(model):
        package = type(step).__module__.split(".")[0]
        if package in ("lightgbm", "xgboost"):
            _register(package)
        if isinstance(step, FunctionTransformer):
            if step.func is not None:
                func = getattr(step.func, "__qualname__", repr(step.func))
                raise UnconvertibleModelError(
                    _FORMAT,
                    path,
                    qualname(step),
                    f"a FunctionTransformer running a user function ({func}), which has no "
                    "ONNX equivalent",
                )
            continue
        if isinstance(step, Pipeline | ColumnTransformer | FeatureUnion):
            continue
        if type(step) not in sklearn_operator_name_map:
            origin = "a custom class" if package != "sklearn" else "a class"
            raise UnconvertibleModelError(
                _FORMAT, path, qualname(step), f"{origin} with no registered ONNX converter"
            )
    if not takes_named_columns(model) and "string" in kinds:
        strings = [s.name for s, k in zip(features, kinds, strict=True) if k == "string"]
        raise UnconvertibleModelError(
            _FORMAT,
            "",
            qualname(model),
            f"string columns ({', '.join(map(repr, strings))}) reaching a model that does not "
            "start with a ColumnTransformer, the only step that takes named string inputs",
        )
    return kinds


def _unconvertible(model: Any, exc: BaseException) -> UnconvertibleModelError:
    """Our error for a converter error no strategy got past, naming the step it concerns.

    The step is the one whose converter raised (the innermost frame of the traceback
    converting one of the model's steps: skl2onnx passes each step as
    ``operator.raw_operator``), else the last step whose class the message names (an
    onnxruntime node is named after its operator), else the model as a whole: never the
    final estimator by default, which blamed it for its encoders' and imputers' errors.
    """
    message = str(exc).splitlines()[0] if str(exc) else ""
    steps = list(walk(model))
    found = _converting(steps, exc)
    if found is None:
        named = [(p, s) for p, s in steps if type(s).__name__ in str(exc)]
        found = named[-1] if named else steps[0]
    path, step = found
    return UnconvertibleModelError(
        _FORMAT,
        path,
        qualname(step),
        f"an error from the converter: {type(exc).__name__}: {message}",
    )


def _converting(steps: list[tuple[str, Any]], exc: BaseException) -> tuple[str, Any] | None:
    """The step whose converter was running when ``exc`` was raised, if one was."""
    by_id = {id(step): (path, step) for path, step in steps}
    found = None
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:  # the cause holds the frames
        seen.add(id(error))
        trace = error.__traceback__
        while trace is not None:
            operator = trace.tb_frame.f_locals.get("operator")
            raw = getattr(operator, "raw_operator", None)
            if raw is not None and id(raw) in by_id:
                found = by_id[id(raw)]  # innermost wins
            trace = trace.tb_next
        if found is not None:
            return found
        error = error.__cause__ or error.__context__
    return None


# ------------------------------------------------------------------------ graph


def build_graph(
    model: Any,
    features: Sequence[FeatureSpec],
    kinds: Sequence[InputKind],
    strategy: Strategy,
    *,
    timeout: float = CONVERSION_SECONDS,
) -> Any:
    """The ONNX ModelProto of ``model`` under ``strategy``, with inputs per feature.

    Its trees decide as the original's do (:mod:`modelkeep.onnx.trees`: thresholds
    adjusted in closed form, missing values routed per node); the conversion is stopped
    with :class:`~modelkeep.onnx.trees.ConversionTimeout` after ``timeout`` seconds. Its
    metadata records how it takes a missing string and what it refuses that the schema
    admits (:mod:`modelkeep.onnx.narrowing`), which the input check enforces.
    """
    from onnx import TensorProto
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType
    from sklearn.base import is_classifier

    numeric = FloatTensorType if strategy.numeric == "float" else DoubleTensorType
    element = TensorProto.FLOAT if strategy.numeric == "float" else TensorProto.DOUBLE
    named = takes_named_columns(model)
    if named:
        initial = [
            (spec.name, StringTensorType([None, 1]) if kind == "string" else numeric([None, 1]))
            for spec, kind in zip(features, kinds, strict=True)
        ]
    else:
        initial = [(_ALL_COLUMNS, numeric([None, len(features)]))]
    final = final_estimator(model)
    options = {id(final): {"zipmap": False}} if is_classifier(final) else None
    with warnings.catch_warnings(), adjusted_thresholds(), time_limit(timeout):
        # Converters read fitted attributes scikit-learn deprecates (SVC's probA_ ...):
        # nothing the caller can act on, and fatal where warnings are errors.
        warnings.simplefilter("ignore")
        graph = convert_sklearn(
            model,
            initial_types=initial,
            target_opset={"": opset(), "ai.onnx.ml": ML_OPSET},
            options=options,
            custom_conversion_functions=strategy.conversion_functions(model),
        )
    route_missing_values(graph, model)
    _adapt_inputs(graph, features, kinds, named, element)
    _name_outputs(graph, classifier=is_classifier(final))
    graph.metadata_props.add(key="modelkeep.strategy", value=strategy.name)
    for key, value in narrowing(model, features, kinds).metadata().items():
        graph.metadata_props.add(key=key, value=value)
    return graph


# The one input of a model that does not select columns by name, fed by a Concat of them.
_ALL_COLUMNS: Final = "modelkeep__all_columns"
# onnx TensorProto element types, without importing onnx at module level.
_ELEMENTS: Final = {"double": 11, "int64": 7, "bool": 9, "string": 8}


def _rename(graph: Any, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
    for value in [*graph.input, *graph.output]:
        if value.name == old:
            value.name = new


def _adapt_inputs(
    graph: Any,
    features: Sequence[FeatureSpec],
    kinds: Sequence[InputKind],
    named: bool,
    element: int,
) -> None:
    """Give the graph one input per feature in its own element type, cast where needed."""
    from onnx import helper

    g = graph.graph
    declared = {value.name: value for value in g.input}
    front = []
    inputs = []
    for spec, kind in zip(features, kinds, strict=True):
        wanted = _ELEMENTS[kind]
        inputs.append(helper.make_tensor_value_info(spec.name, wanted, [None, 1]))
        if not named:
            continue
        value = declared.get(spec.name)
        if value is None:  # a column no step reads: still an input of the model
            continue
        have = value.type.tensor_type.elem_type
        if have != wanted:
            inner = f"{spec.name}__modelkeep_cast"
            _rename(g, spec.name, inner)
            front.append(helper.make_node("Cast", [spec.name], [inner], to=have))
    if not named:
        parts = []
        for spec, kind in zip(features, kinds, strict=True):
            if _ELEMENTS[kind] == element:
                parts.append(spec.name)
                continue
            cast = f"{spec.name}__modelkeep_cast"
            front.append(helper.make_node("Cast", [spec.name], [cast], to=element))
            parts.append(cast)
        front.append(helper.make_node("Concat", parts, [_ALL_COLUMNS], axis=1))
    del g.input[:]
    g.input.extend(inputs)
    nodes = [*front, *g.node]
    del g.node[:]
    g.node.extend(nodes)


def _name_outputs(graph: Any, *, classifier: bool) -> None:
    g = graph.graph
    names = [value.name for value in g.output]
    wanted = [LABEL, PROBABILITIES] if classifier else [VALUE]
    if len(names) != len(wanted):
        raise ValueError(f"the converted graph has outputs {names}, expected {len(wanted)}")
    for old, new in zip(names, wanted, strict=True):
        if old != new:
            _rename(g, old, new)


# ------------------------------------------------------------------------ export


def export(model: Any, context: DumpContext) -> Exported:
    """Convert ``model``, trying each strategy until one passes the parity check.

    Raises:
        MissingDependencyError: the ``[onnx]`` extra is not installed.
        UnconvertibleModelError: a step or a feature has no ONNX equivalent, or no strategy
            gave a graph onnxruntime can run.
        ParityError: every graph disagrees with the original beyond the thresholds (and
            ``force`` is false); it carries the report of the closest one.
    """
    from modelkeep.onnx import parity
    from modelkeep.onnx.runtime import OnnxRuntime

    require_packages()
    features = list(context.features)
    kinds = check_convertible(model, features)
    if context.classes is not None and not hasattr(model, "predict_proba"):
        # The graph's probabilities output would hold decision scores, which OnnxModel
        # would hand out as probabilities: refused rather than converted labels-only.
        final = final_estimator(model)
        raise UnconvertibleModelError(
            _FORMAT,
            next((path for path, step in walk(model) if step is final), ""),
            qualname(final),
            "a classifier without predict_proba (labels only), while the ONNX model "
            "modelkeep writes answers predict_proba with class probabilities",
        )
    thresholds = context.parity if context.parity is not None else ParityThresholds()
    labels = None
    if context.classes is not None:
        labels = list(context.labels or [str(c) for c in context.classes])
    rows = parity.evaluation_rows(features, context.golden, context.validation, model=model)
    expected = parity.original_outputs(model, rows, proba=context.classes is not None)

    attempts: list[Attempt] = []
    errors: list[BaseException] = []
    best: tuple[ParityReport, bytes] | None = None
    for strategy in STRATEGIES:
        try:
            data = build_graph(model, features, kinds, strategy).SerializeToString()
            runtime = OnnxRuntime(
                data, artifact="(conversion)", features=features, classes=context.classes
            )
            report = parity.measure(
                expected,
                runtime,
                features=features,
                classes=context.classes,
                labels=labels,
                task=context.task,
                strategy=strategy.name,
                thresholds=thresholds,
            )
        except MissingDependencyError:
            raise
        except Exception as exc:  # a converter or onnxruntime refused this strategy
            errors.append(exc)
            cause = exc.__cause__ if isinstance(exc, ArtifactError) and exc.__cause__ else exc
            first = str(cause).splitlines()[0] if str(cause) else ""
            attempts.append(
                Attempt(
                    strategy=strategy.name,
                    passed=False,
                    summary=f"no usable graph: {type(cause).__name__}: {first}"[:300],
                )
            )
            continue
        attempts.append(
            Attempt(
                strategy=strategy.name,
                passed=report.passed,
                summary=summarize(report, strategy=False),
            )
        )
        if best is None or _closer(report, best[0]):
            best = (report, data)
        if report.passed:
            break
    if best is None:
        raise _unconvertible(model, errors[0])
    report, data = best
    report = report.model_copy(update={"attempts": attempts})
    if not report.passed:
        if not context.force:
            raise ParityError(_FORMAT, report, render_report(report))
        report = report.model_copy(update={"forced": True})
    details = {
        "conversion": {
            "strategy": report.strategy,
            "opset": opset(),
            "ml_opset": ML_OPSET,
            "packages": package_versions(),
            "inputs": {spec.name: kind for spec, kind in zip(features, kinds, strict=True)},
            "outputs": [LABEL, PROBABILITIES] if context.classes is not None else [VALUE],
        },
        "parity": report.model_dump(mode="json"),
    }
    return Exported(data=data, details=details, report=report)


def _closer(report: ParityReport, other: ParityReport) -> bool:
    """Whether ``report`` is closer to the original than ``other``.

    Passing first, then fewer regions failing (one region wrong beats several), fewer
    label flips, a smaller largest difference.
    """

    def key(r: ParityReport) -> tuple[bool, int, int, float]:
        worst = r.max_rel_diff if r.task == "regression" else r.max_abs_diff
        failing = sum(not region.passed for region in r.regions)
        return (
            not r.passed,
            failing,
            r.label_mismatches,
            float("inf") if worst is None else worst,
        )

    return key(report) < key(other)

"""Conversion strategies: how much of the graph computes in float32, tried in order.

skl2onnx computes in float32 by default, where scikit-learn computes its preprocessing in
float64; a tree behind a StandardScaler then sees a value one float32 step away from what
scikit-learn fed it, and a row on a threshold takes the other branch. Such a row can be
anywhere (scikit-learn puts thresholds next to training values, not only at midpoints), so
passing on the rows measured is weak evidence for a float32 graph. The strategies are
therefore tried from the one that repeats scikit-learn's arithmetic to the leanest, and
:func:`modelkeep.onnx.export.export` keeps the first that passes the parity check:

- ``double``: float64 throughout; tree ensembles keep their thresholds as float64 tensors
  (``ai.onnx.ml`` opset 3), so trees that compare float64 values (HistGradientBoosting,
  LightGBM) and those that compare float32 values against adjusted thresholds
  (scikit-learn's forests) decide as the original does;
- ``double-preprocessing``: inputs and preprocessing in float64, then a cast to float32 in
  front of the final estimator, which is what scikit-learn's own trees and XGBoost do (for
  estimators whose converter or onnxruntime kernel has no float64 version: XGBoost, SVC);
- ``float32``: skl2onnx's default, everything in float32 (the last resort).

The functions here are skl2onnx converter wrappers; they import skl2onnx lazily and are
only called during a conversion.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from modelkeep.onnx.structure import final_estimator, walk

__all__ = ["STRATEGIES", "Strategy", "strategy_named"]

Converter = Callable[[Any, Any, Any], None]

_TREE_OPS = frozenset({"TreeEnsembleClassifier", "TreeEnsembleRegressor"})
# Float attributes of the tree ensemble ops that have a *_as_tensor twin in ai.onnx.ml 3.
_TENSOR_ATTRIBUTES = ("nodes_values", "nodes_hitrates", "base_values", "class_weights")
_REGRESSOR_TENSOR_ATTRIBUTES = ("nodes_values", "nodes_hitrates", "base_values", "target_weights")


@dataclass(frozen=True)
class Strategy:
    """One way of converting: the element type of numeric inputs, and of the estimator."""

    name: str
    description: str
    numeric: Literal["float", "double"]
    estimator: Literal["native", "float", "double-trees"]

    def conversion_functions(self, model: Any) -> dict[type, Converter]:
        """skl2onnx ``custom_conversion_functions`` implementing this strategy for ``model``.

        Every estimator with ``predict`` gets a wrapped converter: all of them have their
        attributes cleaned (see :class:`_Container`); the final estimator computes in
        float32 under ``double-preprocessing``; tree ensembles keep float64 thresholds
        under ``double``.
        """
        functions: dict[type, Converter] = {}
        if self.numeric == "double":
            from sklearn.impute import SimpleImputer

            functions[SimpleImputer] = _double_imputer
        final = type(final_estimator(model))
        for _, step in walk(model):
            kind = type(step)
            if _is_encoder(step) and kind not in functions:
                functions[kind] = _encoder_converter(kind)
            elif _is_predictor(step) and kind not in functions:
                functions[kind] = _estimator_converter(
                    kind,
                    float_input=self.estimator == "float" and kind is final,
                    double_trees=self.estimator == "double-trees",
                )
        return functions


STRATEGIES: tuple[Strategy, ...] = (
    Strategy(
        "double",
        "float64 throughout, tree thresholds as float64 tensors (ai.onnx.ml opset 3)",
        numeric="double",
        estimator="double-trees",
    ),
    Strategy(
        "double-preprocessing",
        "float64 inputs and preprocessing as in scikit-learn, a cast to float32 in front of "
        "the final estimator",
        numeric="double",
        estimator="float",
    ),
    Strategy(
        "float32",
        "skl2onnx's default: inputs, preprocessing and estimator in float32",
        numeric="float",
        estimator="native",
    ),
)


def strategy_named(name: str) -> Strategy:
    for strategy in STRATEGIES:
        if strategy.name == name:
            return strategy
    from modelkeep.errors import InvalidChoiceError

    raise InvalidChoiceError(name, [s.name for s in STRATEGIES], "ONNX conversion strategy")


# ------------------------------------------------------------------------ registry


def _is_predictor(model: Any) -> bool:
    return hasattr(model, "predict") and not hasattr(model, "steps")


def _registered_converter(model_type: type) -> Converter:
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from skl2onnx.common._registration import get_converter

    converter: Converter = get_converter(sklearn_operator_name_map[model_type])
    return converter


# ------------------------------------------------------------------------ encoders


def _is_encoder(model: Any) -> bool:
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    return isinstance(model, OneHotEncoder | OrdinalEncoder)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


#: What a ``None`` category is written as: modelkeep feeds a missing value as NaN (as
#: :func:`modelkeep._schema.prepare` does for scikit-learn), which scikit-learn does not
#: take for a ``None`` category, so no input may reach it.
NONE_CATEGORY: Final = "\ue000modelkeep:none\ue000"


def _written(category: Any) -> str:
    from modelkeep.onnx.inputs import MISSING_CATEGORY

    if category is None:
        return NONE_CATEGORY
    if isinstance(category, float) and category != category:
        return MISSING_CATEGORY
    return str(category)


class _EncoderContainer:
    """A container that makes an encoder's string categories take a missing value.

    skl2onnx writes each category of a OneHotEncoder (``cats_strings``) or an
    OrdinalEncoder (``keys_strings`` of a LabelEncoder) as ``str(category)``; the category
    scikit-learn gives a missing value (None or NaN, from training data with missing
    values) becomes ``"None"`` or ``"nan"``, which no missing input is fed as. It is
    written as :data:`~modelkeep.onnx.inputs.MISSING_CATEGORY` instead, what the input
    path feeds a missing string as; without such a category, that string is unseen and
    encodes as scikit-learn encodes a missing value it did not see in training.
    """

    def __init__(self, container: Any, encoder: Any) -> None:
        self._container = container
        self._encoder = encoder
        self._categories = [list(c) for c in encoder.categories_]
        self._done: set[int] = set()
        # An OrdinalEncoder of strings only: its tables are rewritten from its own answers.
        self._ordinal = type(encoder).__name__ == "OrdinalEncoder" and all(
            all(isinstance(c, str) or _is_missing(c) for c in categories)
            for categories in self._categories
        )

    def _ordinal_table(self, index: int) -> dict[str, Any]:
        """LabelEncoder attributes mapping column ``index`` as scikit-learn's transform does.

        skl2onnx maps a missing category to its position where scikit-learn answers
        ``encoded_missing_value`` (NaN by default), and writes no default for an
        ``unknown_value`` of 0; the table here is scikit-learn's own output for each
        category (infrequent ones included) and for an unseen one, as floats (the graph
        casts the encoder's output to its dtype after).
        """
        encoder = self._encoder
        categories = self._categories[index]
        rows = np.empty((len(categories), len(self._categories)), dtype=object)
        for column, values in enumerate(self._categories):
            rows[:, column] = values[0]
        rows[:, index] = categories
        answers = np.asarray(encoder.transform(rows), dtype=np.float64)[:, index]
        unknown = encoder.unknown_value if encoder.handle_unknown == "use_encoded_value" else None
        return {
            "values_floats": answers.astype(np.float32),
            "default_float": float("nan") if unknown is None else float(unknown),
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(self, op_type: str, inputs: Any, outputs: Any, **attrs: Any) -> Any:
        key = {"OneHotEncoder": "cats_strings", "LabelEncoder": "keys_strings"}.get(op_type)
        if key is not None and key in attrs:
            written = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in attrs[key]]
            for index, categories in enumerate(self._categories):
                if index in self._done or written != [str(c) for c in categories]:
                    continue
                self._done.add(index)
                attrs[key] = np.array([_written(c).encode("utf-8") for c in categories])
                if op_type == "LabelEncoder" and self._ordinal:
                    for name in ("values_int64s", "values_floats", "default_int64"):
                        attrs.pop(name, None)
                    attrs.update(self._ordinal_table(index))
                break
        return self._container.add_node(op_type, inputs, outputs, **attrs)

    def check_done(self) -> None:
        for index, categories in enumerate(self._categories):
            strings = any(isinstance(c, str) for c in categories)
            if strings and any(map(_is_missing, categories)) and index not in self._done:
                raise NotImplementedError(
                    "an encoder's category for missing values was not found in the graph"
                )


def _encoder_converter(model_type: type) -> Converter:
    """The registered converter of an encoder, run through :class:`_EncoderContainer`."""

    def convert(scope: Any, operator: Any, container: Any) -> None:
        from modelkeep.onnx.inputs import MISSING_CATEGORY

        encoder = operator.raw_operator
        categories = list(encoder.categories_)
        for values in categories:
            if any(isinstance(c, str) and c in (MISSING_CATEGORY, NONE_CATEGORY) for c in values):
                raise NotImplementedError(
                    f"a training category is {MISSING_CATEGORY!r} or {NONE_CATEGORY!r}, "
                    "strings modelkeep reserves for missing values"
                )
        wrapped = _EncoderContainer(container, encoder)
        original = _registered_converter(model_type)
        function: Any = getattr(original, "_fct", original)
        function(scope, operator, wrapped)
        wrapped.check_done()

    return convert


# ------------------------------------------------------------------------ double imputer


def _double_imputer(scope: Any, operator: Any, container: Any) -> None:
    """SimpleImputer in float64: ``Where(IsNaN(x), statistics, x)``.

    onnxruntime implements the ai.onnx.ml ``Imputer`` op skl2onnx emits for float inputs
    only; standard ops keep float64. ``add_indicator=True`` is refused (skl2onnx drops the
    indicator columns silently; here the strategy fails instead).
    """
    from skl2onnx.common.data_types import DoubleTensorType
    from skl2onnx.operator_converters.common import concatenate_variables
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
    from skl2onnx.proto import onnx_proto

    imputer = operator.raw_operator
    if not isinstance(operator.inputs[0].type, DoubleTensorType):
        convert_sklearn_imputer(scope, operator, container)
        return
    if getattr(imputer, "add_indicator", False):
        raise NotImplementedError("SimpleImputer(add_indicator=True) has no converter")
    statistics = np.asarray(imputer.statistics_, dtype=np.float64)
    features = concatenate_variables(scope, operator.inputs, container)
    fill = scope.get_unique_variable_name("imputer_fill")
    container.add_initializer(
        fill, onnx_proto.TensorProto.DOUBLE, [1, statistics.size], statistics.tolist()
    )
    mask = scope.get_unique_variable_name("imputer_missing")
    missing = imputer.missing_values
    if isinstance(missing, float) and np.isnan(missing):
        container.add_node("IsNaN", [features], [mask])
    elif isinstance(missing, int | float) and not isinstance(missing, bool):
        value = scope.get_unique_variable_name("imputer_missing_value")
        container.add_initializer(value, onnx_proto.TensorProto.DOUBLE, [], [float(missing)])
        container.add_node("Equal", [features, value], [mask])
    else:
        raise NotImplementedError(f"SimpleImputer(missing_values={missing!r}) in float64")
    container.add_node("Where", [mask, fill, features], [operator.outputs[0].full_name])


# ------------------------------------------------------------------------ estimators


class _OperatorView:
    """An skl2onnx operator seen with other input and output variables.

    Lets a registered converter build the estimator on float32 variables while the graph
    around it carries float64, without changing the operator itself.
    """

    def __init__(
        self,
        operator: Any,
        inputs: Sequence[Any],
        outputs: Sequence[Any],
        raw_operator: Any = None,
    ) -> None:
        self._operator = operator
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.raw_operator = operator.raw_operator if raw_operator is None else raw_operator

    @property
    def input_full_names(self) -> list[str]:
        return [v.full_name for v in self.inputs]

    @property
    def output_full_names(self) -> list[str]:
        return [v.full_name for v in self.outputs]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._operator, name)


def _integers(value: Any) -> Any:
    """A list of ints where a converter mixed Python bools (or numpy integers) into one.

    skl2onnx writes HistGradientBoosting's ``nodes_missing_value_tracks_true`` as a mix of
    numpy integers and Python bools; protobuf warns about the bools (and from 7.34 on
    rejects them), so the conversion fails wherever warnings are errors.
    """
    if not isinstance(value, list | tuple) or not value:
        return value
    if all(isinstance(v, bool | int | np.integer | np.bool_) for v in value) and any(
        isinstance(v, bool | np.bool_) for v in value
    ):
        return [int(v) for v in value]
    return value


class _Container:
    """An skl2onnx container that cleans node attributes, and can keep trees in float64.

    With ``double_trees``, tree ensembles are written with float64 thresholds: skl2onnx
    computes tree attributes in float64 for a float64 input but stores them as float
    attributes; ai.onnx.ml opset 3 has ``*_as_tensor`` twins that keep float64. The
    ensemble's scores come out as float32 in onnxruntime; they are cast to float64 unless
    the operator declared that output as float32 (``float_outputs``).
    """

    def __init__(
        self, container: Any, scope: Any, *, double_trees: bool, float_outputs: frozenset[str]
    ) -> None:
        self._container = container
        self._scope = scope
        self._double_trees = double_trees
        self._float_outputs = float_outputs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(
        self,
        op_type: str,
        inputs: Any,
        outputs: Any,
        op_domain: str = "",
        op_version: int | None = None,
        **attrs: Any,
    ) -> Any:
        attrs = {key: _integers(value) for key, value in attrs.items()}
        if not (self._double_trees and op_type in _TREE_OPS):
            return self._container.add_node(
                op_type, inputs, outputs, op_domain=op_domain, op_version=op_version, **attrs
            )
        from onnx import TensorProto, numpy_helper

        names = (
            _TENSOR_ATTRIBUTES
            if op_type == "TreeEnsembleClassifier"
            else _REGRESSOR_TENSOR_ATTRIBUTES
        )
        values = attrs.get("nodes_values")
        if isinstance(values, np.ndarray) and values.dtype != np.float64:
            # Already rounded to float32: float64 tensors would only pretend to be exact.
            raise NotImplementedError(f"{op_type}: the converter gave no float64 thresholds")
        for name in names:
            value = attrs.pop(name, None)
            if value is None or len(value) == 0:
                continue
            array = np.asarray(value, dtype=np.float64).ravel()
            attrs[f"{name}_as_tensor"] = numpy_helper.from_array(array, name=f"{name}_as_tensor")
        outputs = [outputs] if isinstance(outputs, str) else list(outputs)
        score_index = 1 if op_type == "TreeEnsembleClassifier" else 0
        declared = outputs[score_index]
        if declared in self._float_outputs:
            return self._container.add_node(
                op_type, inputs, outputs, op_domain="ai.onnx.ml", op_version=3, **attrs
            )
        scores = self._scope.get_unique_variable_name("tree_scores")
        outputs[score_index] = scores
        self._container.add_node(
            op_type, inputs, outputs, op_domain="ai.onnx.ml", op_version=3, **attrs
        )
        self._container.add_node("Cast", [scores], [declared], to=TensorProto.DOUBLE)
        return None


def _estimator_converter(model_type: type, *, float_input: bool, double_trees: bool) -> Converter:
    """The registered converter of ``model_type``, run through :class:`_Container`.

    ``float_input``: cast a float64 input to float32 first and the outputs back to
    float64. ``double_trees``: keep tree thresholds in float64 (for a float64 input).
    """

    def convert(scope: Any, operator: Any, container: Any) -> None:
        from skl2onnx.common._apply_operation import apply_cast
        from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
        from skl2onnx.proto import onnx_proto

        original = _registered_converter(model_type)
        source = operator.inputs[0]
        double_input = len(operator.inputs) == 1 and isinstance(source.type, DoubleTensorType)
        widen: list[tuple[Any, Any]] = []
        if float_input and double_input:
            as_float = scope.declare_local_variable(
                "float_input", FloatTensorType(source.type.shape)
            )
            apply_cast(
                scope,
                source.full_name,
                as_float.full_name,
                container,
                to=onnx_proto.TensorProto.FLOAT,
            )
            outputs = []
            for output in operator.outputs:
                if isinstance(output.type, DoubleTensorType):
                    narrow = scope.declare_local_variable(
                        f"{output.raw_name}_float", FloatTensorType(output.type.shape)
                    )
                    outputs.append(narrow)
                    widen.append((narrow, output))
                else:
                    outputs.append(output)
            operator = _OperatorView(operator, [as_float], outputs)
        if type(operator.raw_operator).__module__.split(".")[0] == "lightgbm":
            operator = _lightgbm_operator(scope, operator, container)
        trees = double_trees and double_input
        float_outputs = frozenset(
            v.full_name for v in operator.outputs if isinstance(v.type, FloatTensorType)
        )
        wrapped = _Container(container, scope, double_trees=trees, float_outputs=float_outputs)
        function: Any = getattr(original, "_fct", original)  # skl2onnx wraps converters
        if trees and "op_version" in inspect.signature(function).parameters:
            # skl2onnx's forest converters keep float64 attributes only from opset 3 on.
            function(scope, operator, wrapped, op_version=3)
        else:
            function(scope, operator, wrapped)
        for narrow, output in widen:
            apply_cast(
                scope,
                narrow.full_name,
                output.full_name,
                container,
                to=onnx_proto.TensorProto.DOUBLE,
            )

    return convert


# ------------------------------------------------------------------------ LightGBM

#: LightGBM reads every input with ``|x| <= kZeroThreshold`` as 0 (``1e-35f``, a float
#: constant held in a double).
LIGHTGBM_ZERO: Final = float(np.float32(1e-35))


class _DumpedBooster:
    """A LightGBM booster whose ``dump_model`` answers a rewritten dump.

    onnxmltools' converter takes the dump of a booster marked ``is_mock`` as it is.
    """

    is_mock = True

    def __init__(self, booster: Any, dump: dict[str, Any]) -> None:
        self._booster = booster
        self._dump = dump

    def dump_model(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._dump

    def __getattr__(self, name: str) -> Any:
        return getattr(self._booster, name)


class _LightGBMModel:
    """A fitted LightGBM estimator seen with a :class:`_DumpedBooster`."""

    def __init__(self, model: Any, booster: _DumpedBooster) -> None:
        self._model = model
        self.booster_ = booster

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def lightgbm_routing(dump: dict[str, Any]) -> list[int]:
    """Rewrite ``dump``'s numeric splits so onnxmltools routes NaN as LightGBM does.

    LightGBM's ``NumericalDecision``: a NaN is read as 0 unless the node's
    ``missing_type`` is ``NaN``; then a NaN (type ``NaN``) or a zero (type ``Zero``) goes
    the node's default way, anything else compares ``x <= threshold``. onnxmltools sends
    NaN left only where ``default_left`` and not (type ``None`` and a negative threshold),
    which is wrong for a type-``None`` node whose default is right and whose threshold is
    not negative. Each node becomes type ``NaN`` with ``default_left`` the side LightGBM
    sends NaN; the graph maps zeros of a ``Zero``-type feature to NaN in front of the trees.

    Returns the features whose splits are of type ``Zero``.

    Raises:
        NotImplementedError: a feature has splits of type ``Zero`` and of type ``NaN``
            (LightGBM tells 0 from NaN at one and not at the other).
    """
    kinds: dict[int, set[str]] = {}
    stack = [tree["tree_structure"] for tree in dump.get("tree_info", [])]
    while stack:
        node = stack.pop()
        if "split_feature" not in node:
            continue
        stack.extend((node["left_child"], node["right_child"]))
        if node.get("decision_type", "<=") != "<=":
            continue  # categorical: onnxmltools' own handling
        missing = node.get("missing_type", "None")
        kinds.setdefault(int(node["split_feature"]), set()).add(missing)
        if missing in ("NaN", "Zero"):
            left = bool(node["default_left"])
        else:
            left = float(node["threshold"]) >= 0.0
        node["missing_type"] = "NaN"
        node["default_left"] = left
    zero = sorted(f for f, k in kinds.items() if "Zero" in k)
    mixed = [f for f in zero if "NaN" in kinds[f]]
    if mixed:
        raise NotImplementedError(
            f"LightGBM feature {mixed[0]} has splits treating zero as missing and splits "
            "treating NaN as missing"
        )
    return zero


def _lightgbm_operator(scope: Any, operator: Any, container: Any) -> _OperatorView:
    """The LightGBM operator fed as LightGBM reads its input, with routing rewritten.

    In front of the trees: ``|x| <= kZeroThreshold`` becomes 0, and a zero of a feature
    whose splits treat zero as missing becomes NaN (see :func:`lightgbm_routing`).
    """
    from onnx import TensorProto

    model = operator.raw_operator
    dump = model.booster_.dump_model()
    zero_missing = lightgbm_routing(dump)
    source = operator.inputs[0]
    double = type(source.type).__name__ == "DoubleTensorType"
    element = TensorProto.DOUBLE if double else TensorProto.FLOAT
    n_features = int(model.n_features_in_)

    def constant(name: str, value: float) -> str:
        tensor: str = scope.get_unique_variable_name(name)
        container.add_initializer(tensor, element, [], [value])
        return tensor

    def node(op: str, inputs: list[str], name: str) -> str:
        output: str = scope.get_unique_variable_name(name)
        container.add_node(op, inputs, [output], name=scope.get_unique_operator_name(op))
        return output

    x = source.full_name
    tiny = node(
        "LessOrEqual",
        [node("Abs", [x], "lgbm_abs"), constant("lgbm_zero_bound", LIGHTGBM_ZERO)],
        "lgbm_tiny",
    )
    zero = constant("lgbm_zero", 0.0)
    x = node("Where", [tiny, zero, x], "lgbm_zeroed")
    if zero_missing:
        mask = scope.get_unique_variable_name("lgbm_zero_is_missing")
        flags = [i in zero_missing for i in range(n_features)]
        container.add_initializer(mask, TensorProto.BOOL, [1, n_features], flags)
        hit = node("And", [node("Equal", [x, zero], "lgbm_is_zero"), mask], "lgbm_zero_missing")
        x = node("Where", [hit, constant("lgbm_nan", float("nan")), x], "lgbm_input")
    variable = scope.declare_local_variable(
        "lightgbm_input", source.type.__class__(source.type.shape)
    )
    container.add_node(
        "Identity", [x], [variable.full_name], name=scope.get_unique_operator_name("Identity")
    )
    booster = _DumpedBooster(model.booster_, dump)
    return _OperatorView(operator, [variable], operator.outputs, _LightGBMModel(model, booster))

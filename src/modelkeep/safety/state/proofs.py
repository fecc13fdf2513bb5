"""Which classes modelkeep admits in-process, and the proof each one gets.

Three kinds of proof, all run on the final object graph (after the last BUILD or SETITEM):

* **estimators** (``ESTIMATORS``): every attribute name is a constructor parameter, a name
  a fit of the class produces (:mod:`.attributes`, generated) or one every estimator may
  carry; no dunder names; the parameters satisfy scikit-learn's own
  ``_parameter_constraints`` (so a string that names a method or option holds one of its
  legal values); iteration limits are at most :data:`MAX_ITERATIONS` and tolerances finite
  and non-negative; ``n_jobs`` is set to 1; every fitted attribute holds a kind of value
  (``None``, an int, a 2-D float array ...) some fit of the class gave it, with the shape
  relations to ``n_features_in_``, ``len(classes_)`` and ``n_outputs_`` every fit kept
  (:mod:`.kinds`, generated); then the class's hand-written relation
  (:mod:`.relations`), if it has one, and the walk goes on into every attribute;
* **records** (``RECORDS``): helper objects a fitted model holds (losses, links, splines,
  bunches): the same attribute-name check, the relation, and the walk into the attributes;
* **opaque** objects (``OPAQUE``): C-level objects whose state is proven by a relation
  alone (a KD-tree, a random state), or trees that :mod:`modelkeep.safety.trees` proves
  after the walk; most are admitted only in the position their owner keeps them.

A class in none of these is refused (:class:`~modelkeep.errors.UnprovenTypeError`) unless
the caller names it in ``trusted=``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from modelkeep.safety.state import relations
from modelkeep.safety.state.attributes import ATTRIBUTES
from modelkeep.safety.state.checks import (
    describe,
    int_value,
    kind_of,
    kind_words,
    reference_values,
)
from modelkeep.safety.state.frames import FRAME_PROOFS
from modelkeep.safety.state.kinds import EQUALS, KINDS, SHAPES
from modelkeep.safety.state.walk import Proof, Slot, Walk

__all__ = ["ESTIMATORS", "MAX_ITERATIONS", "OPAQUE", "PROOFS", "RECORDS"]

#: The most iterations a stored parameter may ask ``transform`` or ``predict`` for.
MAX_ITERATIONS = 100_000

#: Attributes any scikit-learn estimator may carry besides its parameters and fitted state.
_COMMON = frozenset(
    {
        "feature_names_in_",
        "n_features_in_",
        "_sklearn_version",
        "_sklearn_output_config",
        "_sklearn_auto_wrap_output_keys",
        "_metadata_request",
    }
)

Relation = Callable[[Walk, Any, int], None]

_SK = "sklearn"


def _names(module: str, *classes: str) -> dict[str, Relation | None]:
    return {f"{_SK}.{module}.{name}": None for name in classes}


#: Estimators with a proof, by family; the value is the hand-written relation, if any.
ESTIMATORS: dict[str, Relation | None] = {
    **_names("linear_model._base", "LinearRegression"),
    **_names("linear_model._bayes", "ARDRegression", "BayesianRidge"),
    **_names(
        "linear_model._coordinate_descent",
        "ElasticNet",
        "ElasticNetCV",
        "Lasso",
        "LassoCV",
        "MultiTaskElasticNet",
        "MultiTaskElasticNetCV",
        "MultiTaskLasso",
        "MultiTaskLassoCV",
    ),
    **_names("linear_model._glm.glm", "GammaRegressor", "PoissonRegressor", "TweedieRegressor"),
    **_names("linear_model._huber", "HuberRegressor"),
    **_names(
        "linear_model._least_angle", "Lars", "LarsCV", "LassoLars", "LassoLarsCV", "LassoLarsIC"
    ),
    **_names("linear_model._logistic", "LogisticRegression", "LogisticRegressionCV"),
    **_names("linear_model._omp", "OrthogonalMatchingPursuit", "OrthogonalMatchingPursuitCV"),
    **_names(
        "linear_model._passive_aggressive",
        "PassiveAggressiveClassifier",
        "PassiveAggressiveRegressor",
    ),
    **_names("linear_model._perceptron", "Perceptron"),
    **_names("linear_model._quantile", "QuantileRegressor"),
    **_names("linear_model._ransac", "RANSACRegressor"),
    **_names("linear_model._ridge", "Ridge", "RidgeCV", "RidgeClassifier", "RidgeClassifierCV"),
    **_names(
        "linear_model._stochastic_gradient", "SGDClassifier", "SGDOneClassSVM", "SGDRegressor"
    ),
    **_names("linear_model._theil_sen", "TheilSenRegressor"),
    **_names("svm._classes", "LinearSVC", "LinearSVR"),
    **{
        f"{_SK}.svm._classes.{name}": relations.libsvm
        for name in ("SVC", "NuSVC", "SVR", "NuSVR", "OneClassSVM")
    },
    **{
        f"{_SK}.neighbors.{module}.{name}": relations.neighbors
        for module, name in (
            ("_classification", "KNeighborsClassifier"),
            ("_classification", "RadiusNeighborsClassifier"),
            ("_regression", "KNeighborsRegressor"),
            ("_regression", "RadiusNeighborsRegressor"),
            ("_unsupervised", "NearestNeighbors"),
            ("_graph", "KNeighborsTransformer"),
            ("_graph", "RadiusNeighborsTransformer"),
            ("_lof", "LocalOutlierFactor"),
        )
    },
    **_names("neighbors._nearest_centroid", "NearestCentroid"),
    **_names(
        "naive_bayes", "BernoulliNB", "CategoricalNB", "ComplementNB", "GaussianNB", "MultinomialNB"
    ),
    **_names(
        "tree._classes",
        "DecisionTreeClassifier",
        "DecisionTreeRegressor",
        "ExtraTreeClassifier",
        "ExtraTreeRegressor",
    ),
    **_names(
        "ensemble._forest",
        "ExtraTreesClassifier",
        "ExtraTreesRegressor",
        "RandomForestClassifier",
        "RandomForestRegressor",
        "RandomTreesEmbedding",
    ),
    **_names("ensemble._gb", "GradientBoostingClassifier", "GradientBoostingRegressor"),
    **_names(
        "ensemble._hist_gradient_boosting.gradient_boosting",
        "HistGradientBoostingClassifier",
        "HistGradientBoostingRegressor",
    ),
    **_names("ensemble._iforest", "IsolationForest"),
    **_names("ensemble._weight_boosting", "AdaBoostClassifier", "AdaBoostRegressor"),
    **_names("ensemble._bagging", "BaggingClassifier", "BaggingRegressor"),
    **{
        f"{_SK}.ensemble._stacking.{name}": relations.stacking
        for name in ("StackingClassifier", "StackingRegressor")
    },
    **_names("ensemble._voting", "VotingClassifier", "VotingRegressor"),
    **{
        f"{_SK}.neural_network._multilayer_perceptron.{name}": relations.mlp
        for name in ("MLPClassifier", "MLPRegressor")
    },
    **_names(
        "preprocessing._data",
        "Binarizer",
        "KernelCenterer",
        "MaxAbsScaler",
        "MinMaxScaler",
        "Normalizer",
        "PowerTransformer",
        "QuantileTransformer",
        "RobustScaler",
        "StandardScaler",
    ),
    **_names("preprocessing._discretization", "KBinsDiscretizer"),
    **_names("preprocessing._encoders", "OneHotEncoder", "OrdinalEncoder"),
    **_names("preprocessing._function_transformer", "FunctionTransformer"),
    **_names("preprocessing._label", "LabelBinarizer", "LabelEncoder", "MultiLabelBinarizer"),
    **_names("preprocessing._polynomial", "PolynomialFeatures"),
    f"{_SK}.preprocessing._polynomial.SplineTransformer": relations.spline_transformer,
    **_names("preprocessing._target_encoder", "TargetEncoder"),
    **_names("impute._base", "MissingIndicator", "SimpleImputer"),
    **_names("impute._knn", "KNNImputer"),
    **_names("impute._iterative", "IterativeImputer"),
    **_names("compose._column_transformer", "ColumnTransformer"),
    **_names("compose._target", "TransformedTargetRegressor"),
    **_names(
        "feature_selection._univariate_selection",
        "GenericUnivariateSelect",
        "SelectFdr",
        "SelectFpr",
        "SelectFwe",
        "SelectKBest",
        "SelectPercentile",
    ),
    **_names("feature_selection._from_model", "SelectFromModel"),
    **_names("feature_selection._rfe", "RFE", "RFECV"),
    **_names("feature_selection._sequential", "SequentialFeatureSelector"),
    **_names("feature_selection._variance_threshold", "VarianceThreshold"),
    **_names("decomposition._pca", "PCA"),
    **_names("decomposition._incremental_pca", "IncrementalPCA"),
    **_names("decomposition._truncated_svd", "TruncatedSVD"),
    **_names("pipeline", "FeatureUnion", "Pipeline"),
    **_names("dummy", "DummyClassifier", "DummyRegressor"),
    **_names(
        "discriminant_analysis", "LinearDiscriminantAnalysis", "QuadraticDiscriminantAnalysis"
    ),
    **_names(
        "multiclass",
        "OneVsOneClassifier",
        "OneVsRestClassifier",
        "OutputCodeClassifier",
        "_ConstantPredictor",
    ),
    **_names(
        "multioutput",
        "ClassifierChain",
        "MultiOutputClassifier",
        "MultiOutputRegressor",
        "RegressorChain",
    ),
    **_names("random_projection", "GaussianRandomProjection", "SparseRandomProjection"),
    **_names(
        "kernel_approximation", "AdditiveChi2Sampler", "Nystroem", "RBFSampler", "SkewedChi2Sampler"
    ),
    **_names("kernel_ridge", "KernelRidge"),
    f"{_SK}.neighbors._kde.KernelDensity": relations.kernel_density,
    **_names("neighbors._nca", "NeighborhoodComponentsAnalysis"),
    **_names("mixture._gaussian_mixture", "GaussianMixture"),
    **_names("mixture._bayesian_mixture", "BayesianGaussianMixture"),
    **{f"{_SK}.cluster._kmeans.{n}": relations.kmeans for n in ("KMeans", "MiniBatchKMeans")},
    **_names("cluster._mean_shift", "MeanShift"),
    **_names("cluster._affinity_propagation", "AffinityPropagation"),
    **_names("cluster._dbscan", "DBSCAN"),
    **_names("cluster._optics", "OPTICS"),
    **_names("cluster._spectral", "SpectralClustering"),
    **_names("cluster._agglomerative", "AgglomerativeClustering", "FeatureAgglomeration"),
    **_names("cross_decomposition._pls", "CCA", "PLSCanonical", "PLSRegression", "PLSSVD"),
    **_names("decomposition._factor_analysis", "FactorAnalysis"),
    **_names("decomposition._fastica", "FastICA"),
    **_names("decomposition._kernel_pca", "KernelPCA"),
    **_names("decomposition._sparse_pca", "MiniBatchSparsePCA", "SparsePCA"),
    **_names(
        "decomposition._dict_learning",
        "DictionaryLearning",
        "MiniBatchDictionaryLearning",
        "SparseCoder",
    ),
    **_names("decomposition._nmf", "MiniBatchNMF", "NMF"),
    **_names("covariance._empirical_covariance", "EmpiricalCovariance"),
    **_names("covariance._shrunk_covariance", "LedoitWolf", "OAS", "ShrunkCovariance"),
    **_names("covariance._robust_covariance", "MinCovDet"),
    **_names("covariance._elliptic_envelope", "EllipticEnvelope"),
    **_names("covariance._graph_lasso", "GraphicalLasso", "GraphicalLassoCV"),
    **_names("manifold._isomap", "Isomap"),
    **_names("manifold._locally_linear", "LocallyLinearEmbedding"),
    **_names("manifold._spectral_embedding", "SpectralEmbedding"),
    **_names("manifold._t_sne", "TSNE"),
    **_names("manifold._mds", "MDS"),
    **_names("manifold._classical_mds", "ClassicalMDS"),
    **_names("neural_network._rbm", "BernoulliRBM"),
    **_names("semi_supervised._self_training", "SelfTrainingClassifier"),
    **_names("semi_supervised._label_propagation", "LabelPropagation", "LabelSpreading"),
    **_names("feature_extraction._dict_vectorizer", "DictVectorizer"),
    **_names("feature_extraction.text", "TfidfTransformer"),
    **{
        f"{_SK}.feature_extraction.text.{n}": relations.vectorizer
        for n in ("CountVectorizer", "HashingVectorizer", "TfidfVectorizer")
    },
    **_names("feature_extraction.image", "PatchExtractor"),
    **_names("model_selection._classification_threshold", "FixedThresholdClassifier"),
    **_names("frozen._frozen", "FrozenEstimator"),
    **_names("calibration", "CalibratedClassifierCV", "_SigmoidCalibration"),
    f"{_SK}.isotonic.IsotonicRegression": relations.isotonic,
    **_names("cluster._birch", "Birch"),
    f"{_SK}.cluster._hdbscan.hdbscan.HDBSCAN": relations.single_linkage,
    f"{_SK}.cluster._bisect_k_means.BisectingKMeans": relations.bisecting_kmeans,
    **_names("feature_extraction._hash", "FeatureHasher"),
    f"{_SK}.decomposition._lda.LatentDirichletAllocation": relations.topic_model,
    **_names("kernel_approximation", "PolynomialCountSketch"),
    **_names("cluster._bicluster", "SpectralBiclustering", "SpectralCoclustering"),
    **_names("model_selection._search", "GridSearchCV", "RandomizedSearchCV"),
    **_names(
        "model_selection._search_successive_halving",
        "HalvingGridSearchCV",
        "HalvingRandomSearchCV",
    ),
    **_names("model_selection._classification_threshold", "TunedThresholdClassifierCV"),
    # The boosters' model bytes are proven before their parsers run (safety.boosters, called
    # by the unpickler right before BUILD); the estimators around them are proven here.
    "lightgbm.sklearn.LGBMClassifier": None,
    "lightgbm.sklearn.LGBMRegressor": None,
    "xgboost.sklearn.XGBClassifier": None,
    "xgboost.sklearn.XGBRegressor": None,
}

_HGB = f"{_SK}.ensemble._hist_gradient_boosting.gradient_boosting"
_LOSS_OWNERS = (
    *(f"{_HGB}.{n}" for n in ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")),
    *(
        f"{_SK}.ensemble._gb.{n}"
        for n in ("GradientBoostingClassifier", "GradientBoostingRegressor")
    ),
    *(
        f"{_SK}.linear_model._glm.glm.{n}"
        for n in ("GammaRegressor", "PoissonRegressor", "TweedieRegressor")
    ),
)
_LOSS_SLOTS = frozenset((owner, attr) for owner in _LOSS_OWNERS for attr in ("_loss", "_base_loss"))
_LOSSES = (
    "AbsoluteError",
    "ExponentialLoss",
    "HalfBinomialLoss",
    "HalfGammaLoss",
    "HalfMultinomialLoss",
    "HalfPoissonLoss",
    "HalfSquaredError",
    "HalfTweedieLoss",
    "HalfTweedieLossIdentity",
    "HuberLoss",
    "PinballLoss",
)

#: Helper objects fitted models hold, with a relation and the positions they may occupy.
RECORDS: dict[str, tuple[Relation | None, frozenset[Slot] | None]] = {
    **{f"{_SK}._loss.loss.{name}": (None, _LOSS_SLOTS) for name in _LOSSES},
    **{
        f"{_SK}._loss.link.{name}": (None, None)
        for name in (
            "HalfLogitLink",
            "IdentityLink",
            "Interval",
            "LogLink",
            "LogitLink",
            "MultinomialLogit",
        )
    },
    f"{_SK}.ensemble._hist_gradient_boosting.binning._BinMapper": (
        None,
        frozenset(
            (f"{_HGB}.{n}", "_bin_mapper")
            for n in ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")
        ),
    ),
    f"{_SK}.ensemble._hist_gradient_boosting.predictor.TreePredictor": (
        None,
        frozenset(
            (f"{_HGB}.{n}", "_predictors")
            for n in ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")
        ),
    ),
    "lightgbm.basic.Booster": (
        None,
        frozenset(
            (f"lightgbm.sklearn.{n}", "_Booster") for n in ("LGBMClassifier", "LGBMRegressor")
        ),
    ),
    "xgboost.core.Booster": (
        None,
        frozenset((f"xgboost.sklearn.{n}", "_Booster") for n in ("XGBClassifier", "XGBRegressor")),
    ),
    f"{_SK}.calibration._CalibratedClassifier": (None, None),
    f"{_SK}.cluster._birch._CFNode": (None, None),
    f"{_SK}.cluster._birch._CFSubcluster": (None, None),
    f"{_SK}.cluster._bisect_k_means._BisectingTree": (None, None),
    **{
        f"{_SK}.metrics._scorer.{name}": (relations.scorer, None)
        for name in ("_Scorer", "_CurveScorer", "_PassthroughScorer")
    },
    **{
        f"{_SK}.model_selection._split.{name}": (None, None)
        for name in (
            "KFold",
            "StratifiedKFold",
            "GroupKFold",
            "ShuffleSplit",
            "StratifiedShuffleSplit",
            "RepeatedKFold",
            "RepeatedStratifiedKFold",
            "_CVIterableWrapper",
        )
    },
    "scipy.interpolate._interpolate.interp1d": (
        relations.interpolation,
        frozenset({(f"{_SK}.isotonic.IsotonicRegression", "f_")}),
    ),
    f"{_SK}.neural_network._stochastic_optimizers.AdamOptimizer": (None, None),
    f"{_SK}.neural_network._stochastic_optimizers.SGDOptimizer": (None, None),
    f"{_SK}.utils._metadata_requests.MetadataRequest": (None, None),
    f"{_SK}.utils._metadata_requests.MethodMetadataRequest": (None, None),
    "scipy.interpolate._bsplines.BSpline": (
        relations.bspline,
        frozenset({(f"{_SK}.preprocessing._polynomial.SplineTransformer", "bsplines_")}),
    ),
    **{
        f"scipy.sparse.{module}.{name}": (relations.sparse_matrix, None)
        for module, names in (
            ("_csr", ("csr_matrix", "csr_array")),
            ("_csc", ("csc_matrix", "csc_array")),
            ("_coo", ("coo_matrix", "coo_array")),
        )
        for name in names
    },
}

_KERNELS = (
    "CompoundKernel",
    "ConstantKernel",
    "DotProduct",
    "ExpSineSquared",
    "Exponentiation",
    "Hyperparameter",
    "Matern",
    "PairwiseKernel",
    "Product",
    "RBF",
    "RationalQuadratic",
    "Sum",
    "WhiteKernel",
)
RECORDS.update({f"{_SK}.gaussian_process.kernels.{name}": (None, None) for name in _KERNELS})
ESTIMATORS.update(
    {
        **_names("gaussian_process._gpr", "GaussianProcessRegressor"),
        **_names(
            "gaussian_process._gpc",
            "GaussianProcessClassifier",
            "_BinaryGaussianProcessClassifierLaplace",
        ),
    }
)

_TREE_OWNERS = frozenset(
    (f"{_SK}.tree._classes.{name}", "tree_")
    for name in (
        "DecisionTreeClassifier",
        "DecisionTreeRegressor",
        "ExtraTreeClassifier",
        "ExtraTreeRegressor",
    )
)
_NEIGHBOR_OWNERS = frozenset(
    (name, "_tree") for name, relation in ESTIMATORS.items() if relation is relations.neighbors
) | {(f"{_SK}.neighbors._kde.KernelDensity", "tree_")}
_SGD_OWNERS = frozenset(
    (name, attribute)
    for attribute in ("loss_function_", "_loss_function_")
    for name in ESTIMATORS
    if ".linear_model._stochastic_gradient." in name
    or ".linear_model._passive_aggressive." in name
    or ".linear_model._perceptron." in name
)


def _nothing(walk: Walk, obj: Any, node: int) -> None:
    """Cython objects holding only numbers (losses): their type is the whole proof."""


#: C-level objects: proven by a relation alone; their attributes are not walked.
OPAQUE: dict[str, tuple[Relation, frozenset[Slot] | None]] = {
    f"{_SK}.tree._tree.Tree": (_nothing, _TREE_OWNERS),  # proven by safety.trees after the walk
    f"{_SK}.neighbors._kd_tree.KDTree": (relations.binary_tree, _NEIGHBOR_OWNERS),
    f"{_SK}.neighbors._ball_tree.BallTree": (relations.binary_tree, _NEIGHBOR_OWNERS),
    **{f"{_SK}._loss._loss.Cy{name}": (_nothing, None) for name in _LOSSES},
    **{
        f"{_SK}.linear_model._sgd_fast.{name}": (_nothing, _SGD_OWNERS)
        for name in (
            "EpsilonInsensitive",
            "Hinge",
            "ModifiedHuber",
            "SquaredEpsilonInsensitive",
            "SquaredHinge",
        )
    },
    # The native handle a booster's __setstate__ made from its proven model bytes.
    "ctypes.c_void_p": (
        _nothing,
        frozenset({("lightgbm.basic.Booster", "_handle"), ("xgboost.core.Booster", "handle")}),
    ),
    "numpy.random.mtrand.RandomState": (relations.random_state, None),
    "numpy.random._generator.Generator": (
        lambda walk, rng, node: relations.bit_generator(walk, rng.bit_generator, node),
        None,
    ),
    "numpy.random._mt19937.MT19937": (relations.bit_generator, None),
    "numpy.random._pcg64.PCG64": (relations.bit_generator, None),
    "numpy.random.bit_generator.SeedSequence": (relations.seed_sequence, None),
}


# -- the generic proofs


_PARAMETERS: dict[type, frozenset[str]] = {}


def _parameters(cls: type) -> frozenset[str]:
    """The constructor's parameter names, as scikit-learn's ``get_params`` knows them."""
    names = _PARAMETERS.get(cls)
    if names is None:
        getter = getattr(cls, "_get_param_names", None)
        names = _PARAMETERS[cls] = frozenset(getter()) if getter is not None else frozenset()
    return names


def _check_names(walk: Walk, obj: Any, node: int, allowed: frozenset[str]) -> dict[str, Any]:
    state = getattr(obj, "__dict__", None)
    if not isinstance(state, dict):
        raise walk.refuse(node, "an instance without its attribute dictionary")
    # A forest's trees have the same attribute names: a key set is judged once per class.
    seen = (type(obj), allowed, tuple(state))
    if seen in _NAMES_CHECKED:
        return state
    for key in state:
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("__"):
            raise walk.refuse(
                node,
                f"attribute {key!r}: expected a plain attribute name, got a dunder or non-name",
            )
        if key not in allowed:
            raise walk.refuse(
                node,
                f"attribute {key!r}: expected only the parameters and fitted attributes of "
                f"{type(obj).__qualname__}, got one no fit of it sets",
            )
    if len(_NAMES_CHECKED) < 4096:
        _NAMES_CHECKED.add(seen)
    return state


_NAMES_CHECKED: set[tuple[type, frozenset[str], tuple[object, ...]]] = set()
_PLAIN = frozenset({type(None), bool, int, float, str})
_LEGAL: set[tuple[type, str, type, object]] = set()


_PLANS: dict[type, tuple[tuple[tuple[str, Any], ...], tuple[str, ...]]] = {}


def _parameter_plan(cls: type) -> tuple[tuple[tuple[str, Any], ...], tuple[str, ...]]:
    """A class's constrained parameters with their constraints, and the parameters whose
    values are bounded (iteration limits, tolerances); computed once per class."""
    plan = _PLANS.get(cls)
    if plan is None:
        names = _parameters(cls)
        constraints = getattr(cls, "_parameter_constraints", None)
        table = constraints if isinstance(constraints, dict) else {}
        constrained = tuple((n, table[n]) for n in sorted(names & table.keys()))
        bounded = tuple(n for n in sorted(names) if "iter" in n or n == "tol" or n.endswith("_tol"))
        plan = _PLANS[cls] = (constrained, bounded)
    return plan


def _check_parameters(walk: Walk, obj: Any, node: int, state: dict[str, Any]) -> None:
    cls = type(obj)
    constrained, bounded = _parameter_plan(cls)
    for name, allowed in constrained:
        if name in state:
            problem = _constraint_problem(cls, name, allowed, state[name])
            if problem is not None:
                raise walk.refuse(node, problem)
    for name in bounded:
        if name not in state:
            continue
        value = state[name]
        number = isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)
        if number and "iter" in name and not value <= MAX_ITERATIONS:
            raise walk.refuse(
                node,
                f"{name}: expected at most {MAX_ITERATIONS:,} iterations, got {describe(value)}",
            )
        tolerance = name == "tol" or name.endswith("_tol")
        if number and tolerance and not (math.isfinite(value) and value >= 0):
            raise walk.refuse(
                node, f"{name}: expected a finite tolerance >= 0, got {describe(value)}"
            )
    if state.get("n_jobs") not in (None, 1):
        state["n_jobs"] = 1  # predict never starts worker processes or threads for a file


def _constraint_problem(cls: type, name: str, allowed: Any, value: Any) -> str | None:
    """Why ``value`` satisfies none of scikit-learn's constraints for the parameter, or None.

    The constraints are asked one by one (``is_satisfied_by``), never through
    ``validate_parameter_constraints``, whose message would ``repr`` the value and so call
    methods of a loaded object.
    """
    if allowed == "no_validation" or not isinstance(allowed, list):
        return None
    key = (cls, name, type(value), value) if type(value) in _PLAIN else None
    if key is not None and key in _LEGAL:
        return None
    from sklearn.utils._param_validation import make_constraint

    try:
        made = [make_constraint(c) for c in allowed]
        satisfied = any(c.is_satisfied_by(value) for c in made)
    except Exception as exc:  # a constraint that cannot judge this value refuses it
        return f"{name}: its constraints cannot judge {describe(value)} ({type(exc).__name__})"
    if not satisfied:
        shown = [str(c) for c in made if not getattr(c, "hidden", False)]
        return (
            f"the {name!r} parameter of {cls.__name__} must be "
            f"{' or '.join(shown) or 'something else'}, got {describe(value)}"
        )
    if key is not None and len(_LEGAL) < 65536:
        _LEGAL.add(key)
    return None


def _children(name: str, state: dict[str, Any]) -> Iterator[tuple[object, str, Slot | None]]:
    for key, value in state.items():
        yield value, f".{key}", (name, key)


#: Kinds of the attributes every estimator may carry, where no fit of a class recorded them.
_COMMON_KINDS: dict[str, frozenset[str]] = {
    "feature_names_in_": frozenset({"array:O1"}),
    "n_features_in_": frozenset({"int"}),
    "_sklearn_version": frozenset({"str"}),
    "_sklearn_output_config": frozenset({"dict"}),
    "_sklearn_auto_wrap_output_keys": frozenset({"set"}),
    "_metadata_request": frozenset({"instance"}),
}

#: How a message names each reference of a shape relation.
_REFERENCE_WORDS = {
    "n_features_in_": "n_features_in_",
    "classes_": "len(classes_)",
    "n_outputs_": "n_outputs_",
}

#: One class's fitted-attribute plan: allowed kinds by attribute; by attribute, the
#: ``(ndim, axis, reference)`` relations of its arrays; by attribute, the references an
#: integer equals. Built once per class from the generated tables (:mod:`.kinds`).
_Shapes = tuple[tuple[str, tuple[tuple[int, int, str], ...]], ...]
_Equals = tuple[tuple[str, tuple[str, ...]], ...]


def _check_kinds(
    walk: Walk,
    node: int,
    state: dict[str, Any],
    kinds: dict[str, frozenset[str]],
    shapes: _Shapes,
    equals: _Equals,
) -> None:
    """Each fitted attribute holds a kind of value some fit of the class gave it, and its
    shape follows ``n_features_in_``, ``len(classes_)`` and ``n_outputs_`` where every fit's
    did."""
    for key, value in state.items():
        allowed = kinds.get(key)
        if allowed is not None and kind_of(value) not in allowed:
            wanted = " or ".join(kind_words(k) for k in sorted(allowed))
            raise walk.refuse(node, f"{key}: expected {wanted}, got {describe(value)}")
    if not (shapes or equals):
        return
    references = reference_values(state)
    for key, relations_ in shapes:
        if key not in state:
            continue
        value = state[key]
        kind = type(value)
        if kind is np.ndarray:
            shape, ndim_ = value.shape, value.ndim
        elif kind is list or kind is tuple:
            shape, ndim_ = (len(value),), 0  # ndim 0 in the tables: a list's length
        else:
            continue
        for ndim, axis, reference in relations_:
            size = references.get(reference)
            if ndim_ == ndim and size is not None and shape[axis] != size:
                where = f"axis {axis} of length" if ndim else "a length of"
                got = describe(value) if ndim else f"a {kind.__name__} of length {len(value)}"
                raise walk.refuse(
                    node,
                    f"{key}: expected {where} {_REFERENCE_WORDS[reference]} = {size}, got {got}",
                )
    for key, references_ in equals:
        number = int_value(state.get(key))
        for reference in references_:
            size = references.get(reference)
            if number is not None and size is not None and number != size:
                raise walk.refuse(
                    node,
                    f"{key}: expected {_REFERENCE_WORDS[reference]} = {size}, "
                    f"got {describe(state[key])}",
                )


def _estimator_proof(name: str, relation: Relation | None) -> Proof:
    recorded = ATTRIBUTES.get(name, frozenset()) | _COMMON
    allowed: list[frozenset[str]] = []  # with the parameters, once the class is seen
    kinds = {**_COMMON_KINDS, **KINDS.get(name, {})}
    shapes: _Shapes = tuple(sorted(SHAPES.get(name, {}).items()))
    equals: _Equals = tuple(sorted(EQUALS.get(name, {}).items()))

    def check(walk: Walk, obj: Any, node: int) -> Iterable[tuple[object, str, Slot | None]]:
        if not allowed:  # the proof is keyed by the exact class, so this never changes
            allowed.append(recorded | _parameters(type(obj)))
            for parameter in _parameters(type(obj)):  # a parameter's kind is the user's
                kinds.pop(parameter, None)
        state = _check_names(walk, obj, node, allowed[0])
        _check_parameters(walk, obj, node, state)
        _check_kinds(walk, node, state, kinds, shapes, equals)
        if relation is not None:
            relation(walk, obj, node)
        return list(_children(name, state))

    return Proof(check)


def _record_proof(name: str, relation: Relation | None, where: frozenset[Slot] | None) -> Proof:
    allowed = ATTRIBUTES.get(name, frozenset())

    def check(walk: Walk, obj: Any, node: int) -> Iterable[tuple[object, str, Slot | None]]:
        state = _check_names(walk, obj, node, allowed)
        if relation is not None:
            relation(walk, obj, node)
        return list(_children(name, state))

    return Proof(check, where)


def _opaque_proof(relation: Relation, where: frozenset[Slot] | None) -> Proof:
    def check(walk: Walk, obj: Any, node: int) -> Iterable[tuple[object, str, Slot | None]]:
        relation(walk, obj, node)
        return ()

    return Proof(check, where)


def _bunch(walk: Walk, obj: Any, node: int) -> Iterable[tuple[object, str, Slot | None]]:
    state = _check_names(walk, obj, node, frozenset({"_deprecated_key_to_warnings"}))
    children: list[tuple[object, str, Slot | None]] = []
    for key, value in obj.items():
        walk.check_key(key, node)
        children.append((value, f"[{key!r}]", None))
    children.extend((value, f".{key}", None) for key, value in state.items())
    return children


_MASKED_ATTRIBUTES = frozenset(
    {
        "_fill_value",
        "_hardmask",
        "_sharedmask",
        "_isfield",
        "_baseclass",
        "_optinfo",
        "_basedict",
        "_mask",
    }
)


def _masked_array(walk: Walk, obj: Any, node: int) -> Iterable[tuple[object, str, Slot | None]]:
    state = _check_names(walk, obj, node, _MASKED_ATTRIBUTES)
    relations.masked_array(walk, obj, node)
    children: list[tuple[object, str, Slot | None]] = [
        (value, f".{key}", None) for key, value in state.items()
    ]
    children.append((obj.view(np.ndarray), ".data", None))
    return children


PROOFS: dict[str, Proof] = {
    "numpy.ma.MaskedArray": Proof(_masked_array),
    **{name: _estimator_proof(name, relation) for name, relation in ESTIMATORS.items()},
    **{name: _record_proof(name, rel, where) for name, (rel, where) in RECORDS.items()},
    **{name: _opaque_proof(rel, where) for name, (rel, where) in OPAQUE.items()},
    f"{_SK}.utils._bunch.Bunch": Proof(_bunch),
    **FRAME_PROOFS,
}

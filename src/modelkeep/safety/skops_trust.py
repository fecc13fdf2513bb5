"""Types modelkeep trusts in skops files beyond skops' own defaults. Data, not code.

Each name is exact (``module.qualname``); there are no wildcards. A name belongs here only
after review: what the type can do when skops constructs it, and why that is harmless.
The load path trusts these, plus the caller's ``trusted=`` names, and nothing else.
"""

from __future__ import annotations

__all__ = ["REVIEWED_TYPES", "VALIDATED_TREE_TYPES"]

#: Reviewed types that need no check after loading.
REVIEWED_TYPES: frozenset[str] = frozenset(
    {
        # skops 0.16 stores the dtype of arrays such as OneHotEncoder.categories_ and
        # ColumnTransformer's feature bookkeeping as a numpy.dtype object, and does not trust
        # it by default. Constructing a dtype from its recorded string runs no user code and
        # reads no file; it is how every numpy array names its element type.
        "numpy.dtype",
        # HistGradientBoosting with native categorical features keeps a preprocessor whose
        # FunctionTransformer holds functools.partial(check_array, ...). skops audits the
        # function inside a partial as its own node, so trusting partial trusts no function:
        # partial(os.system, ...) is still refused for os.system (a test proves it).
        "functools.partial",
        # Input validation only: converts and checks an array, reads and runs nothing else.
        "sklearn.utils.validation.check_array",
        # A dict with attribute access; stacking and voting ensembles keep
        # named_estimators_ in one. Each value is audited as its own node.
        "sklearn.utils._bunch.Bunch",
    }
)

#: Tree types skops does not trust because their node arrays are not bounds-checked:
#: a crafted file can make predict() read outside them. modelkeep trusts them only because
#: :func:`modelkeep.safety.trees.validate_trees` checks every one of them right after
#: deserialization, before anything calls the model.
VALIDATED_TREE_TYPES: frozenset[str] = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
)

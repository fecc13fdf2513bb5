"""Benign coverage: every estimator of ``all_estimators()`` that fits on small generic data, plus
XGBoost, LightGBM and a pandas-fed pipeline, saved as joblib and as pickle, loads with no
``trusted=`` argument and computes the same outputs as before.

The models come from ``scripts/benign_models.py``, the same ones the allowlist generator
uses; they are fitted once per session (about 10 s).
"""

from __future__ import annotations

import io
import pickle
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
try:
    from benign_models import Fitted, fitted_models, outputs
finally:
    sys.path.pop(0)

import modelkeep  # noqa: E402

# scikit-learn marks these deprecated; loading them warns, as it should.
_DEPRECATED = {"PassiveAggressiveClassifier", "PassiveAggressiveRegressor"}
# Their BLAS results depend on memory alignment: a plain pickle round trip differs by
# about 1e-15 too, so they are compared to a relative 1e-12 instead of bit for bit.
_ALIGNMENT_SENSITIVE = {"KernelRidge", "LabelPropagation", "LabelSpreading"}
# How many estimators of all_estimators() have a state proof (README "What is proven").
PROVEN_AT_LEAST = 210


@pytest.fixture(scope="module")
def models() -> tuple[dict[str, Fitted], dict[str, str]]:
    fitted, skipped = fitted_models()
    return {m.name: m for m in fitted}, skipped


def _names() -> list[str]:
    from sklearn.utils import all_estimators

    return [name for name, _ in all_estimators()] + [
        "XGBClassifier",
        "XGBRegressor",
        "LGBMClassifier",
        "LGBMRegressor",
        "Pipeline(ColumnTransformer, pandas)",
    ]


def test_coverage(models: tuple[dict[str, Fitted], dict[str, str]]) -> None:
    fitted, skipped = models
    from sklearn.utils import all_estimators

    names = {name for name, _ in all_estimators()}
    covered = names & set(fitted)
    # Every scikit-learn estimator is covered (README: "Benign coverage"); the four boosting
    # models and the pandas pipeline come on top.
    assert skipped == {}
    assert covered == names
    assert len(fitted) == len(names) + 5


@contextmanager
def _expected_warnings(name: str) -> Iterator[None]:
    if name in _DEPRECATED:
        with pytest.warns(FutureWarning, match=f"Class {name} is deprecated"):
            yield
    else:
        yield


def _same(name: str, before: dict[str, Any], after: dict[str, Any]) -> None:
    assert before.keys() == after.keys()
    assert before, f"{name}: nothing to compare"
    for key in before:
        if name in _ALIGNMENT_SENSITIVE:
            np.testing.assert_allclose(after[key], before[key], rtol=1e-12, atol=1e-14)
        else:
            np.testing.assert_array_equal(after[key], before[key], err_msg=f"{name}.{key}")


def _unproven(estimator: object) -> tuple[str, ...]:
    """The classes in ``estimator``'s graph that have no state proof, as the loader names them."""
    from modelkeep.errors import UnprovenTypeError
    from modelkeep.safety.state import prove_state

    names: list[str] = []
    while True:
        try:
            prove_state(estimator, trusted=names)
            return tuple(names)
        except UnprovenTypeError as exc:
            names.extend(exc.types)


def test_proof_coverage(models: tuple[dict[str, Fitted], dict[str, str]]) -> None:
    # README "What is proven": the estimators of all_estimators() with a state proof. The
    # figure may only grow; every proven one loads in-process below.
    from sklearn.utils import all_estimators

    fitted = models[0]
    proven = {name for name, _ in all_estimators() if not _unproven(fitted[name].estimator)}
    assert len(proven) >= PROVEN_AT_LEAST, sorted(proven)
    for family in (
        "LogisticRegression",
        "SVC",
        "KNeighborsClassifier",
        "GaussianNB",
        "RandomForestClassifier",
        "HistGradientBoostingClassifier",
        "MLPClassifier",
        "ColumnTransformer",
        "SimpleImputer",
        "SelectKBest",
        "PCA",
        "Pipeline",
    ):
        assert family in proven


@pytest.mark.parametrize("name", _names())
def test_loads_without_trusted_and_computes_the_same(
    name: str, models: tuple[dict[str, Fitted], dict[str, str]], tmp_path: Path
) -> None:
    # A model whose every class has a proof loads with no trusted=; one holding unproven
    # classes is refused naming them, and loads when the caller trusts exactly those.
    from modelkeep.errors import UnprovenTypeError

    model = models[0][name]
    unproven = list(_unproven(model.estimator))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fitted on tiny data: convergence warnings and such
        before = outputs(model.estimator, model.X)
    buffer = io.BytesIO()
    import joblib

    joblib.dump(model.estimator, buffer)
    files = {
        tmp_path / "model.joblib": buffer.getvalue(),
        tmp_path / "model.pkl": pickle.dumps(model.estimator, protocol=5),
    }
    for path, data in files.items():
        path.write_bytes(data)
        if unproven:
            with pytest.raises(UnprovenTypeError, match="no state proof for") as info:
                modelkeep.safe_load(path)
            assert set(info.value.types) <= set(unproven)
        with _expected_warnings(name):
            loaded = modelkeep.safe_load(path, trusted=unproven or None)
        assert type(loaded) is type(model.estimator)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            after = outputs(loaded, model.X)
        _same(name, before, after)

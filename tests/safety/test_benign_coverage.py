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
from modelkeep.safety import scan  # noqa: E402

# scikit-learn marks these deprecated; loading them warns, as it should.
_DEPRECATED = {"PassiveAggressiveClassifier", "PassiveAggressiveRegressor"}
# Their BLAS results depend on memory alignment: a plain pickle round trip differs by
# about 1e-15 too, so they are compared to a relative 1e-12 instead of bit for bit.
_ALIGNMENT_SENSITIVE = {"KernelRidge", "LabelPropagation", "LabelSpreading"}


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


@pytest.mark.parametrize("name", _names())
def test_loads_without_trusted_and_computes_the_same(
    name: str, models: tuple[dict[str, Fitted], dict[str, str]], tmp_path: Path
) -> None:
    model = models[0][name]
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
        assert scan(path).safe, scan(path)
        with _expected_warnings(name):
            loaded = modelkeep.safe_load(path)
        assert type(loaded) is type(model.estimator)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            after = outputs(loaded, model.X)
        _same(name, before, after)

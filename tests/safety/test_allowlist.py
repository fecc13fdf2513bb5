"""The allowlist is data with a few invariants; the policy compares strings."""

from __future__ import annotations

import re
import warnings

import pytest

from modelkeep.errors import InvalidChoiceError
from modelkeep.safety.allowlist import ALLOWED, CALLABLE, NEVER_MODULES, NEVER_NAMES, RENAMED
from modelkeep.safety.policy import TrustPolicy, is_never
from modelkeep.safety.unpickler import _resolve


def test_nothing_allowed_is_never_allowed() -> None:
    assert [n for n in ALLOWED if is_never(*n.rsplit(".", 1))] == []


def test_callable_and_renamed_names_are_allowed() -> None:
    assert sorted(CALLABLE - ALLOWED) == []
    assert sorted(set(RENAMED) - ALLOWED) == []


def test_no_wildcards() -> None:
    assert [n for n in ALLOWED if "*" in n or n.endswith(".")] == []
    assert all(re.fullmatch(r"[A-Za-z_][\w.]*\.[A-Za-z_]\w*", n) for n in ALLOWED)


@pytest.mark.parametrize(
    "name",
    [
        "builtins.eval",
        "builtins.exec",
        "builtins.getattr",
        "builtins.__import__",
        "os.system",
        "posix.system",
        "subprocess.Popen",
        "pickle.loads",
        "_pickle.loads",
        "numpy.load",
        "importlib.import_module",
        "runpy.run_path",
        "socket.create_connection",
        "builtins.open",
        "operator.attrgetter",
        "joblib.load",
    ],
)
def test_the_issues_never_list(name: str) -> None:
    assert is_never(*name.rsplit(".", 1))
    assert not TrustPolicy().allows(*name.rsplit(".", 1))


def test_never_sets_are_not_empty_and_disjoint_from_allowed() -> None:
    assert {"os", "subprocess", "importlib", "runpy", "pickle"} <= NEVER_MODULES
    assert not (NEVER_NAMES & ALLOWED)


def test_every_allowed_name_resolves_here() -> None:
    """No typo: each name is importable as written (or through RENAMED), warning-free."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unresolved = []
        for name in sorted(ALLOWED):
            module, attr = name.rsplit(".", 1)
            try:
                _resolve(module, attr)
            except Exception as exc:
                unresolved.append(f"{name}: {exc}")
    assert unresolved == []


def test_dotted_names_need_an_exact_pair() -> None:
    policy = TrustPolicy()
    assert policy.allows("numpy._core.multiarray", "_reconstruct")
    assert not policy.allows("numpy._core", "multiarray._reconstruct")
    assert not policy.allows("joblib.numpy_pickle", "os.system")
    trusting = TrustPolicy(["numpy._core:multiarray._reconstruct"])
    assert trusting.allows("numpy._core", "multiarray._reconstruct")
    assert not trusting.allows("numpy", "_core.multiarray._reconstruct")


def test_calls_are_a_narrower_permission() -> None:
    policy = TrustPolicy()
    assert policy.allows("xgboost.core", "Booster")
    assert not policy.allows_call("xgboost.core", "Booster")
    assert policy.allows_call("numpy", "dtype")
    assert TrustPolicy(["xgboost.core.Booster"]).allows_call("xgboost.core", "Booster")


@pytest.mark.parametrize(
    ("trusted", "message"),
    [
        (
            "numpy.float64",
            "trusted: expected one of 'a list of exact names', got \"'numpy.float64'\".",
        ),
        (
            ["NoDot"],
            "trusted: expected one of \"'package.module.Name' or 'package.module:Dotted.name'\", "
            "got \"'NoDot'\".",
        ),
    ],
)
def test_malformed_trusted(trusted: object, message: str) -> None:
    with pytest.raises(InvalidChoiceError, match=re.escape(message)):
        TrustPolicy(trusted)  # type: ignore[arg-type]

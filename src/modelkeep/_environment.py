"""Capture the environment a model is saved in, and compare it with this one."""

from __future__ import annotations

import inspect
import platform
import sys
from collections.abc import Iterator
from functools import cache, lru_cache
from importlib import metadata

import numpy as np

from modelkeep.errors import EnvironmentDifference
from modelkeep.manifest import Environment

__all__ = ["capture_environment", "compare_environment", "model_modules"]

#: Packages recorded whenever they are installed: a fitted pipeline's arrays and helpers
#: come from them even when no class of the model is defined there.
CORE_DISTRIBUTIONS = ("numpy", "scipy", "scikit-learn", "pandas", "skops", "joblib")

_SCALARS = (str, bytes, int, float, complex, bool, type(None), np.ndarray, np.generic)


def _walk(obj: object) -> Iterator[object]:
    """Every object reachable from ``obj`` through attributes and containers, once each."""
    seen: set[int] = set()
    stack = [obj]
    while stack:
        current = stack.pop()
        if id(current) in seen or isinstance(current, _SCALARS):
            if isinstance(current, np.ndarray) and current.dtype == object:
                stack.extend(current.ravel().tolist())
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, dict):
            stack.extend(current.keys())
            stack.extend(current.values())
        elif isinstance(current, list | tuple | set | frozenset):
            stack.extend(current)
        elif hasattr(current, "__dict__") and not isinstance(current, type):
            stack.extend(vars(current).values())


def model_modules(model: object) -> set[str]:
    """Top-level modules of the classes (and functions) referenced by a fitted model."""
    modules = set()
    for obj in _walk(model):
        named = isinstance(obj, type) or inspect.isroutine(obj)
        module = getattr(obj, "__module__", None) if named else type(obj).__module__
        if isinstance(module, str) and module:
            modules.add(module.split(".")[0])
    return modules - {"builtins"}


@lru_cache(maxsize=1)
def _module_distributions() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())


@cache
def _installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, read once per process (reading package
    metadata costs milliseconds, and the modules this process imported do not change)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def capture_environment(model: object) -> Environment:
    """The Python, platform and package versions a fitted ``model`` depends on.

    Packages are the distributions providing the top-level modules of the model's classes,
    plus :data:`CORE_DISTRIBUTIONS` when installed. Modules of the standard library are
    left out; they come with the Python version.
    """
    mapping = _module_distributions()
    distributions = set(CORE_DISTRIBUTIONS)
    stdlib: frozenset[str] = getattr(sys, "stdlib_module_names", frozenset())
    for module in model_modules(model):
        if module in stdlib:
            continue
        distributions.update(mapping.get(module, []))
    packages: dict[str, str] = {}
    for distribution in sorted(distributions, key=str.lower):
        version = _installed_version(distribution)
        if version is not None:
            packages[_canonical(distribution)] = version
    return Environment(
        python_version=platform.python_version(),
        python_implementation=platform.python_implementation(),
        platform=platform.platform(),
        packages=packages,
        requirements=[f"{name}=={version}" for name, version in packages.items()],
    )


def _canonical(distribution: str) -> str:
    return distribution.lower().replace("_", "-")


def compare_environment(recorded: Environment) -> list[EnvironmentDifference]:
    """Each difference between the recorded environment and this one.

    The Python version and implementation and every recorded package are compared; the
    platform string is informational only (it changes with every kernel update).
    """
    differences: list[EnvironmentDifference] = []
    if recorded.python_implementation != platform.python_implementation():
        differences.append(
            EnvironmentDifference(
                "python implementation",
                recorded.python_implementation,
                platform.python_implementation(),
            )
        )
    if recorded.python_version != platform.python_version():
        differences.append(
            EnvironmentDifference("python", recorded.python_version, platform.python_version())
        )
    for name, version in recorded.packages.items():
        installed = _installed_version(name)
        if installed != version:
            differences.append(EnvironmentDifference(name, version, installed))
    return differences

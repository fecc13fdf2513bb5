"""Optional dependencies: import them where a feature needs them, or say which extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from modelkeep.errors import MissingDependencyError

__all__ = ["require"]


def require(extra: str, *modules: str, feature: str, packages: str | None = None) -> ModuleType:
    """Import every module of ``modules`` and return the first.

    Raises :class:`MissingDependencyError` (``"<feature> needs <packages>: pip install
    'modelkeep[<extra>]'"``) when one cannot be imported; ``packages`` names them as a user
    installs them (default: the module names).
    """
    if not modules:
        raise ValueError("require() needs at least one module name")
    loaded: list[ModuleType] = []
    try:
        for name in modules:
            loaded.append(importlib.import_module(name))
    except ImportError as exc:
        raise MissingDependencyError(feature, packages or ", ".join(modules), extra) from exc
    return loaded[0]

"""``modelkeep.load(source)``: a bundle path, or a registry reference.

The dispatch lives here, above both layers, so the bundle layer never imports the
registry (DESIGN.md: dependencies flow registry -> bundle).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from modelkeep import bundle
from modelkeep.errors import BundleNotFoundError, UnknownReferenceError
from modelkeep.registry.refs import is_reference, parse_reference

if TYPE_CHECKING:
    from modelkeep.model import Model

__all__ = ["load"]


def load(source: str | os.PathLike[str], **options: Any) -> Model:
    """Load a verified model from a bundle directory or from the default registry.

    ``source`` is a bundle directory, or a registry reference: ``"churn"`` (the latest
    version), ``"churn:3"``, ``"churn@production"``. A path that exists always wins; a
    string that is not an existing path and parses as a reference is resolved through
    ``modelkeep.Registry()`` (``$MODELKEEP_HOME`` or ``~/.modelkeep``). Either way the
    bundle goes through every check of :func:`modelkeep.bundle.load`, with ``options``
    (``format``, ``env``, ``trusted``, ``atol`` ...) passed on unchanged.

    Raises:
        BundleNotFoundError: no such directory, and no such model in the registry.
        UnknownReferenceError: ``"name:N"`` or ``"name@alias"`` names nothing registered.
        and every error of :func:`modelkeep.bundle.load`.

    Example:
        >>> model = modelkeep.load("churn@production")
    """
    if isinstance(source, str) and not os.path.lexists(source) and is_reference(source):
        from modelkeep.registry import Registry

        registry = Registry()
        try:
            path = registry.get(source).path
        except UnknownReferenceError as exc:
            ref = parse_reference(source)
            if ref.version is not None or ref.alias is not None:
                raise
            # A bare name may have been meant as a path: say both were tried.
            raise BundleNotFoundError(
                source, f"no such directory, and no model of that name in {registry}"
            ) from exc
        finally:
            registry.close()
        return bundle.load(path, **options)
    return bundle.load(source, **options)

"""The trust check between the allowlist (data) and the loaders (code): string comparisons.

A reference is the ``(module, name)`` pair the unpickler's ``find_class`` is asked for. It
is allowed when ``module.name`` is in :data:`~modelkeep.safety.allowlist.ALLOWED` or the
caller's ``trusted=`` names, and it is not never-allowed. A *dotted* name (``np.load`` in
module ``sklearn.base``: protocol 4 resolves it by walking attributes) matches only an
explicit ``"module:dotted.name"`` entry, so ``module.name`` strings never stand for such
a walk.
"""

from __future__ import annotations

from collections.abc import Iterable

from modelkeep.errors import InvalidChoiceError, NeverTrustedError
from modelkeep.safety.allowlist import ALLOWED, CALLABLE, NEVER_MODULES, NEVER_NAMES

__all__ = ["TrustPolicy", "is_never"]


def is_never(module: str, name: str) -> bool:
    """Whether ``module.name`` can never be trusted (see the allowlist's NEVER sets)."""
    parts = module.split(".")
    if any(".".join(parts[:i]) in NEVER_MODULES for i in range(1, len(parts) + 1)):
        return True
    return f"{module}.{name}" in NEVER_NAMES or f"{module}.{name.split('.')[0]}" in NEVER_NAMES


def _split(entry: str) -> tuple[str, str]:
    """Split a trusted= entry: ``"pkg.mod.Name"`` or ``"pkg.mod:Dotted.name"``.

    The colon form names a dotted attribute path explicitly.
    """
    if ":" in entry:
        module, _, name = entry.partition(":")
    else:
        module, _, name = entry.rpartition(".")
    return module, name


class TrustPolicy:
    """The allowlist plus one call's ``trusted=`` names.

    Raises:
        InvalidChoiceError: ``trusted`` is a string, or holds a malformed name.
        NeverTrustedError: ``trusted`` names something that can never be trusted.
    """

    def __init__(self, trusted: Iterable[str] | None = None) -> None:
        if isinstance(trusted, str):
            raise InvalidChoiceError(repr(trusted), ["a list of exact names"], "trusted")
        extra = list(trusted or [])
        pairs = []
        for entry in extra:
            module, name = _split(entry) if isinstance(entry, str) else ("", "")
            if not module or not name:
                raise InvalidChoiceError(
                    repr(entry),
                    ["'package.module.Name' or 'package.module:Dotted.name'"],
                    "trusted",
                )
            pairs.append((module, name))
        forbidden = [f"{m}.{n}" for m, n in pairs if is_never(m, n)]
        if forbidden:
            raise NeverTrustedError(forbidden)
        self.trusted: tuple[str, ...] = tuple(f"{m}.{n}" for m, n in pairs)
        self._names = ALLOWED | {f"{m}.{n}" for m, n in pairs if "." not in n}
        self._calls = CALLABLE | {f"{m}.{n}" for m, n in pairs if "." not in n}
        self._dotted = {(m, n) for m, n in pairs if "." in n}
        self._instances: dict[type, bool] = {}

    def allows(self, module: str, name: str) -> bool:
        """Whether a file may reference ``(module, name)``."""
        if is_never(module, name):
            return False
        if "." in name:
            return (module, name) in self._dotted
        return f"{module}.{name}" in self._names

    def allows_call(self, module: str, name: str) -> bool:
        """Whether a file may call the allowed global ``(module, name)`` with arguments."""
        if not self.allows(module, name):
            return False
        if "." in name:
            return True  # only an explicit trusted= pair allows a dotted name at all
        return f"{module}.{name}" in self._calls

    def allows_instance(self, cls: type) -> bool:
        """Whether BUILD may set state on an instance of ``cls``: it or a base is allowed."""
        known = self._instances.get(cls)
        if known is None:
            known = self._instances[cls] = self._allows_instance(cls)
        return known

    def _allows_instance(self, cls: type) -> bool:
        for base in cls.__mro__:
            if base is object:
                continue
            module = getattr(base, "__module__", "")
            qualname = getattr(base, "__qualname__", "")
            if (
                isinstance(module, str)
                and isinstance(qualname, str)
                and self.allows(module, qualname)
            ):
                return True
        return False

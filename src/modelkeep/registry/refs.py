"""Registry references: ``churn`` (latest), ``churn:3`` (a version), ``churn@production``
(an alias), ``churn?schema=3`` (the newest version whose feature-schema version is 3)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelkeep.errors import InvalidReferenceError

__all__ = ["Reference", "check_alias", "check_name", "is_reference", "parse_reference"]

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_ALIAS = r"[A-Za-z][A-Za-z0-9._-]{0,63}"
_NAME_RE = re.compile(_NAME)
_ALIAS_RE = re.compile(_ALIAS)
_REFERENCE_RE = re.compile(
    rf"(?P<name>{_NAME})(?::(?P<version>[0-9]+)|@(?P<alias>{_ALIAS})|\?schema=(?P<schema>[0-9]+))?"
)


@dataclass(frozen=True)
class Reference:
    """A parsed reference: a name and at most one of a version number, an alias or a
    feature-schema version."""

    name: str
    version: int | None = None
    alias: str | None = None
    schema: int | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        if self.schema is not None:
            return f"{self.name}?schema={self.schema}"
        return self.name


def parse_reference(text: str) -> Reference:
    """Parse ``NAME``, ``NAME:VERSION``, ``NAME@ALIAS`` or ``NAME?schema=N``.

    Raises:
        InvalidReferenceError: the text is none of these forms; the message says which part
            is wrong.

    Example:
        >>> parse_reference("churn@production")
        Reference(name='churn', version=None, alias='production')
    """
    if not isinstance(text, str):
        raise InvalidReferenceError(repr(text), f"expected a string, got {type(text).__name__}")
    match = _REFERENCE_RE.fullmatch(text)
    if match is None:
        raise InvalidReferenceError(text, _why_not(text))
    version = match.group("version")
    if version is not None and int(version) < 1:
        raise InvalidReferenceError(text, "version numbers start at 1")
    schema = match.group("schema")
    if schema is not None and int(schema) < 1:
        raise InvalidReferenceError(text, "schema versions start at 1")
    return Reference(
        name=match.group("name"),
        version=int(version) if version is not None else None,
        alias=match.group("alias"),
        schema=int(schema) if schema is not None else None,
    )


def is_reference(text: str) -> bool:
    """Whether ``text`` parses as a reference."""
    try:
        parse_reference(text)
    except InvalidReferenceError:
        return False
    return True


def check_name(name: str) -> str:
    """``name`` if it is a valid model name; :class:`InvalidReferenceError` otherwise."""
    if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
        raise InvalidReferenceError(str(name), _name_problem(str(name)), kind="name")
    return name


def check_alias(alias: str) -> str:
    """``alias`` if it is a valid alias name; :class:`InvalidReferenceError` otherwise."""
    if not isinstance(alias, str) or _ALIAS_RE.fullmatch(alias) is None:
        raise InvalidReferenceError(str(alias), _alias_problem(str(alias)), kind="alias")
    return alias


def _name_problem(text: str) -> str:
    if not text:
        return "it is empty"
    bad = sorted({c for c in text if not (c.isascii() and (c.isalnum() or c in "._-"))})
    if bad:
        return "it contains " + ", ".join(repr(c) for c in bad)
    if not text[0].isalnum():
        return f"it starts with {text[0]!r}"
    return "it is too long"


def _why_not(text: str) -> str:
    if not text:
        return "it is empty"
    if ":" in text and "@" in text:
        return "a reference names a version or an alias, not both"
    if "?" in text:
        name, _, rest = text.partition("?")
        if not rest.startswith("schema=") or not rest[len("schema=") :].isdigit():
            return f"after '?' expected 'schema=N' with N a whole number, got {rest!r}"
        if _NAME_RE.fullmatch(name) is None:
            return f"the name is not valid: {_name_problem(name)}"
        return "a reference names one of a version, an alias or a schema version"
    name, sep, rest = text.partition(":") if ":" in text else text.partition("@")
    if sep == ":" and not rest.isdigit():
        return f"the version after ':' must be a whole number, got {rest!r}"
    if sep == "@" and _ALIAS_RE.fullmatch(rest) is None:
        return f"the alias after '@' is not valid: {_alias_problem(rest)}"
    if _NAME_RE.fullmatch(name) is None:
        return f"the name is not valid: {_name_problem(name)}"
    return "it is not of a known form"


def _alias_problem(text: str) -> str:
    if text and text[0].isdigit():
        return "an alias cannot start with a digit"
    return _name_problem(text)

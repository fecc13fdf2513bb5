"""On-disk formats, one module each, behind the small :class:`~.base.Format` interface."""

from __future__ import annotations

from modelkeep.errors import UnknownFormatError
from modelkeep.formats.base import Format

__all__ = ["Format", "available_formats", "get_format"]


def _skops() -> Format:
    from modelkeep.formats.skops import SkopsFormat

    return SkopsFormat()


# Factories, so a format's dependencies are imported only when it is used.
_FACTORIES = {"skops": _skops}


def available_formats() -> list[str]:
    return sorted(_FACTORIES)


def get_format(name: str) -> Format:
    """The format registered under ``name``; :class:`UnknownFormatError` otherwise."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise UnknownFormatError(name, _FACTORIES, context="format")
    return factory()

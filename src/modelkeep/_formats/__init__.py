"""On-disk formats, one module each, behind the small :class:`~.base.Format` interface."""

from __future__ import annotations

from collections.abc import Callable

from modelkeep._formats.base import Format
from modelkeep.errors import UnknownFormatError

__all__ = ["Format", "available_formats", "get_format"]


def _skops() -> Format:
    from modelkeep._formats.skops import SkopsFormat

    return SkopsFormat()


def _onnx() -> Format:
    from modelkeep._formats.onnx import OnnxFormat

    return OnnxFormat()


def _pickle() -> Format:
    from modelkeep._formats.pickle import PickleFormat

    return PickleFormat()


def _joblib(compression: str | None = None) -> Callable[[], Format]:
    def factory() -> Format:
        from modelkeep._formats.joblib import JoblibFormat

        return JoblibFormat(compression)

    return factory


# Factories, so a format's dependencies are imported only when it is used.
# "joblib:<compression>" writes the same joblib artifact, compressed.
_FACTORIES = {
    "skops": _skops,
    "onnx": _onnx,
    "pickle": _pickle,
    "joblib": _joblib(),
    **{f"joblib:{c}": _joblib(c) for c in ("zlib", "gzip", "lzma", "xz")},
}


def available_formats() -> list[str]:
    return sorted(_FACTORIES)


def get_format(name: str) -> Format:
    """The format registered under ``name``; :class:`UnknownFormatError` otherwise."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise UnknownFormatError(name, _FACTORIES, context="format")
    return factory()

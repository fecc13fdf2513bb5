"""The interface every on-disk format implements."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol

__all__ = ["Format"]


class Format(Protocol):
    """One way of serializing a fitted model to ``artifacts/pipeline.<extension>``.

    ``dump`` writes the file and returns details worth recording in the manifest (for
    example the types a loader must trust). ``load`` deserializes from an open binary
    stream, trusting only what the format trusts by default plus ``trusted``; it raises
    :class:`modelkeep.errors.UntrustedTypesError` instead of constructing anything else.
    """

    name: str
    extension: str

    def dump(self, model: object, path: Path) -> dict[str, Any]: ...

    def load(self, stream: BinaryIO, *, artifact: str, trusted: Sequence[str]) -> object: ...

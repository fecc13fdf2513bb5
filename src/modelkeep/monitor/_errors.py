"""The monitoring floor's own error (``modelkeep.errors`` belongs to the core)."""

from __future__ import annotations

from typing import ClassVar

from modelkeep.errors import BundleError

__all__ = ["NoReferenceProfileError"]


class NoReferenceProfileError(BundleError, ValueError):
    """A bundle saved without a reference profile (before modelkeep recorded one).

    Exit status 2: the reference given cannot be monitored against as it is.
    """

    exit_code: ClassVar[int] = 2

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__(
            f"Bundle {source!r}: expected a reference profile to measure drift against, got "
            "no reference profile (the bundle was saved before modelkeep recorded one). Add "
            f"one from the training data: modelkeep profile {source} --sample TRAIN.parquet"
        )

"""What a format is told, besides the model, when it writes an artifact.

Its own module below both ``_formats`` and ``onnx``: ``_formats/onnx.py`` calls the ONNX
exporter, and the exporter takes this context, so neither imports the other back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelkeep.manifest import FeatureSpec, GoldenSamples, Scalar, Task

__all__ = ["DumpContext"]


@dataclass(frozen=True)
class DumpContext:
    """What a format may need besides the model to write a faithful artifact.

    A conversion (ONNX) builds its inputs from ``features`` and measures itself against the
    original (``classes`` and their business ``labels``, both None for a regressor) on the
    golden samples and ``validation`` rows (a DataFrame, or None) before
    writing. ``parity`` (thresholds, None for the defaults) and ``force`` (write even when
    parity fails, marked as failed) are the caller's options for that check. A format that
    copies the model as it is (skops) ignores the context.
    """

    features: Sequence[FeatureSpec]
    task: Task
    classes: Sequence[Scalar] | None
    golden: GoldenSamples
    labels: Sequence[str] | None = None
    validation: Any = None
    parity: Any = None
    force: bool = False

"""Small shared vocabularies, importable without loading anything heavy (the CLI's options)."""

from __future__ import annotations

from typing import Literal

__all__ = ["EnvMode"]

#: How a load treats differences between the saved and the running environment.
EnvMode = Literal["warn", "strict", "ignore"]

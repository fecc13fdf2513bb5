"""The monitoring floor's error: it lives in :mod:`modelkeep.errors`; re-exported here
for ``modelkeep.monitor``."""

from __future__ import annotations

from modelkeep.errors import NoReferenceProfileError

__all__ = ["NoReferenceProfileError"]

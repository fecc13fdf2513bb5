"""Safe loading of pickle-based model files: the allowlist, a static scan, a restricted loader.

``scan(path)`` reports every global a ``.pkl``, ``.joblib`` or ``.skops`` file (or a bundle)
references, judged against the allowlist, without running anything. ``safe_load(path)``
loads a standalone pickle or joblib file only after that scan passes, through an unpickler
that enforces the same allowlist again, then validates every decision tree in it.
"""

from modelkeep.safety.loader import safe_load
from modelkeep.safety.report import GlobalReference, ScanIssue, ScanReport, scan

__all__ = ["GlobalReference", "ScanIssue", "ScanReport", "safe_load", "scan"]

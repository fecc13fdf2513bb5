"""Text from a bundle, made safe to show: no control character reaches a terminal.

A manifest, a registry index and a bundle's file names are written by whoever made the
bundle. Printed raw, an escape sequence in a description (``"\\x1b]0;...\\x07"``, a
``"\\x1b[2J"``) would retitle, clear or rewrite the reader's terminal, or hide a line of a
report. Every human-readable output passes such text through :func:`printable`; JSON
output through :func:`json_text`.
"""

from __future__ import annotations

import re

__all__ = ["json_text", "printable"]

# C0 controls, DEL, and C1 controls (U+0080-U+009F: U+009B is a one-character CSI).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# What json.dumps(..., ensure_ascii=False) leaves raw: it escapes C0 itself.
_RAW_IN_JSON = re.compile("[\x7f-\x9f]")


def printable(text: object, *, keep: str = "") -> str:
    """``str(text)`` with every control character shown as a visible escape (``\\x1b``).

    ``keep`` names control characters to leave as they are, e.g. ``"\\n"`` for a whole
    document whose lines are its structure; a single value keeps none.

    Example:
        >>> printable("churn\\x1b[2J")
        'churn\\\\x1b[2J'
    """
    return _CONTROL.sub(
        lambda m: m.group() if m.group() in keep else f"\\x{ord(m.group()):02x}", str(text)
    )


def json_text(text: str) -> str:
    """JSON text with DEL and C1 controls escaped (``\\u009b``): the same JSON value.

    ``json.dumps`` escapes C0 controls always, but with ``ensure_ascii=False`` it writes
    DEL and C1 controls raw. Outside strings JSON text holds only ASCII punctuation,
    letters and whitespace, so every such character is inside a string, where its
    ``\\u`` escape means the same character.
    """
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)

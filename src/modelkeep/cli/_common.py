"""What every command shares: printing errors the one way, rich consoles, safe text.

Text from a bundle (manifest fields, file names, registry records, error messages that
quote them) is shown through :func:`printable`, which renders every control character
visibly, so a crafted manifest cannot send escape sequences to the terminal; through
:func:`markup_safe` where the line also holds rich markup, :func:`cell` in a table, and
:func:`json_text` in ``--json`` output.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from modelkeep._text import json_text, printable
from modelkeep.errors import ModelkeepError

__all__ = [
    "cell",
    "errors_exit",
    "json_text",
    "markup_safe",
    "printable",
    "show_warning",
    "stderr",
    "stdout",
]

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def errors_exit() -> Iterator[None]:
    """Turn a ModelkeepError into ``Error: ...`` on stderr and exit status 1."""
    try:
        yield
    except ModelkeepError as exc:
        stderr.print(f"Error: {printable(exc)}", markup=False)
        raise typer.Exit(1) from exc


def show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` for the CLI: ``Warning: ...`` on stderr, through printable().

    A warning can quote a manifest (an environment difference names the recorded package
    versions), so Python's own display, which prints it raw, is replaced.
    """
    stderr.print(f"Warning: {printable(message)}", markup=False)


def markup_safe(text: object) -> str:
    """:func:`printable` text, also escaped for a line printed with rich markup."""
    return escape(printable(text))


def cell(text: object) -> Text:
    """:func:`printable` text as a table cell (a plain str cell would be read as markup)."""
    return Text(printable(text))

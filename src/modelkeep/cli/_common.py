"""What every command shares: printing errors the one way, rich consoles, safe text.

Text from a bundle (manifest fields, file names, registry records, error messages that
quote them) is shown through :func:`printable`, which renders every control character
visibly, so a crafted manifest cannot send escape sequences to the terminal; through
:func:`markup_safe` where the line also holds rich markup, :func:`cell` in a table, and
:func:`json_text` in ``--json`` output.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from modelkeep._text import json_text, printable
from modelkeep.errors import ModelkeepError

if TYPE_CHECKING:
    from modelkeep.safety.policy import TrustPolicy

__all__ = [
    "USAGE",
    "bundle_path",
    "cell",
    "check_trusted",
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


# Exit statuses: 0 success, 1 an error (a bundle fails a check, a file cannot be read or
# written, a registry refuses), 2 misuse (a bad option or argument, as click reports it).
FAILED, USAGE = 1, 2


@contextmanager
def errors_exit() -> Iterator[None]:
    """Turn a ModelkeepError or an OSError into ``Error: ...`` on stderr and an exit status.

    The status is the error's own ``exit_code``: 1, or 2 for misuse (an argument outside
    its choices). An OSError is a user's file that cannot be read or written (``-o`` in a
    missing directory, a missing ``--sample``): a message and status 1, never a traceback.
    """
    try:
        yield
    except ModelkeepError as exc:
        stderr.print(f"Error: {printable(exc)}", markup=False)
        raise typer.Exit(exc.exit_code) from exc
    except OSError as exc:
        stderr.print(f"Error: {printable(describe_os_error(exc))}", markup=False)
        raise typer.Exit(FAILED) from exc


def describe_os_error(exc: OSError) -> str:
    """``No such file or directory: 'x.csv'``: the OS's reason and the file, no errno."""
    reason = exc.strerror or str(exc)
    if exc.filename is None:
        return reason
    return f"{reason}: {str(exc.filename)!r}"


def check_trusted(trusted: Iterable[str] | None) -> TrustPolicy:
    """``--trusted`` names through the one trust policy; a bad name is misuse (exit 2).

    Checked before anything is read, whatever the format, as ``scan`` always did: a
    never-trusted name (``os.system``) is refused even where no loader would consult it.
    """
    from modelkeep.safety.policy import TrustPolicy

    try:
        return TrustPolicy(trusted)
    except ModelkeepError as exc:
        stderr.print(f"Error: {printable(exc)}", markup=False)
        raise typer.Exit(USAGE) from exc


def bundle_path(source: str) -> Path:
    """The bundle directory ``source`` names: a path, or a registry reference's stored copy.

    :func:`modelkeep._load.resolve_source` decides which, as for ``modelkeep.load``.
    """
    from modelkeep._load import locate, resolve_source
    from modelkeep.registry.refs import Reference

    found = resolve_source(source)
    if isinstance(found, Reference):
        return locate(found).path
    return found


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

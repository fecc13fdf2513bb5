"""What every command shares: printing errors the one way, and rich consoles."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from modelkeep.errors import ModelkeepError

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def errors_exit() -> Iterator[None]:
    """Turn a ModelkeepError into ``Error: ...`` on stderr and exit status 1."""
    try:
        yield
    except ModelkeepError as exc:
        stderr.print(f"Error: {exc}", markup=False)
        raise typer.Exit(1) from exc

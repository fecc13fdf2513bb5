"""Run the ``modelkeep`` command in this process, as its entry point would (one helper).

Every CLI test goes through :func:`run`: the command's real code over Typer's runner, with
the entry point's own warning display installed, and a raw exception from a command failing
the test instead of being printed (none may reach a user). One smoke test in
``cli/test_cli.py`` still starts the real console script in a subprocess.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from modelkeep.cli import app
from modelkeep.cli._common import show_warning, stderr, stdout

__all__ = ["Ran", "run"]


@dataclass(frozen=True)
class Ran:
    """What the command did: its exit status and what it printed on each stream."""

    returncode: int
    stdout: str
    stderr: str
    args: tuple[str, ...] = ()

    @property
    def output(self) -> str:
        """Both streams, for an assertion's message."""
        return self.stdout + self.stderr


@contextmanager
def _width(columns: int | None) -> Iterator[None]:
    # The consoles read COLUMNS when the module is imported; a test that needs a wide
    # terminal sets their width for the call, as COLUMNS does for a new process.
    if columns is None:
        yield
        return
    before = (stdout.width, stderr.width)
    stdout.width = stderr.width = columns
    try:
        yield
    finally:
        stdout.width, stderr.width = before


@contextmanager
def _directory(cwd: Path | None) -> Iterator[None]:
    if cwd is None:
        yield
        return
    before = Path.cwd()
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(before)


def run(
    *args: str,
    cwd: Path | None = None,
    columns: int | None = None,
    env: dict[str, str] | None = None,
) -> Ran:
    """``modelkeep ARGS...``; ``env`` adds to (never replaces) the environment."""
    runner = CliRunner()
    with warnings.catch_warnings(), _width(columns), _directory(cwd):
        # As in a new process: each warning shown once per place, through the CLI's display.
        warnings.resetwarnings()
        warnings.simplefilter("default")
        warnings.showwarning = show_warning
        result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr, args)

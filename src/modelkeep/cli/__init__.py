"""The ``modelkeep`` command: one module per command (group), mounted here."""

from __future__ import annotations

import typer

from modelkeep.cli import inspect, verify

app = typer.Typer(
    name="modelkeep",
    help="Save, check and load trained models as trustworthy bundles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("inspect")(inspect.inspect_command)
app.command("verify")(verify.verify_command)


def main() -> None:
    """Entry point of the ``modelkeep`` console script."""
    app()

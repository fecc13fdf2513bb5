"""The ``modelkeep`` command: one module per command (group), mounted here."""

from __future__ import annotations

import warnings

import typer

from modelkeep.cli import card, convert, import_, inspect, keygen, registry, scan, sign, verify
from modelkeep.cli._common import show_warning

app = typer.Typer(
    name="modelkeep",
    help="Save, check and load trained models as trustworthy bundles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("inspect")(inspect.inspect_command)
app.command("verify")(verify.verify_command)
app.command("keygen")(keygen.keygen_command)
app.command("sign")(sign.sign_command)
app.add_typer(registry.app, name="registry")
app.command("card")(card.card_command)
app.command("convert")(convert.convert_command)
app.command("scan")(scan.scan_command)
app.command("import")(import_.import_command)


def main() -> None:
    """Entry point of the ``modelkeep`` console script."""
    warnings.showwarning = show_warning
    app()

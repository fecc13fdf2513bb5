"""The ``modelkeep`` command: one module per command (group), mounted here."""

from __future__ import annotations

import warnings
from typing import Annotated

import typer

from modelkeep.cli import (
    card,
    convert,
    doctor,
    import_,
    inspect,
    keygen,
    monitor,
    predict,
    profile,
    registry,
    scan,
    serve,
    sign,
    verify,
)
from modelkeep.cli._common import show_warning

app = typer.Typer(
    name="modelkeep",
    help="Save, check and load trained models as trustworthy bundles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Inherited by every command and sub-app: -h wherever --help works.
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from modelkeep._version import __version__

        print(f"modelkeep {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print modelkeep's version and exit.",
        ),
    ] = False,
) -> None:
    """Save, check and load trained models as trustworthy bundles.

    Exit status: 0 success, 1 an error (a check failed, a file cannot be read or written),
    2 misuse (a bad option or argument). `scan` also exits 1 when anything is untrusted
    and 2 when a file cannot be read.
    """


app.command("inspect")(inspect.inspect_command)
app.command("verify")(verify.verify_command)
app.command("keygen")(keygen.keygen_command)
app.command("sign")(sign.sign_command)
app.add_typer(registry.app, name="registry")
app.command("card")(card.card_command)
app.command("convert")(convert.convert_command)
app.command("scan")(scan.scan_command)
app.command("import")(import_.import_command)
app.command("doctor")(doctor.doctor_command)
app.command("serve")(serve.serve_command)
app.command("monitor")(monitor.monitor_command)
app.command("profile")(profile.profile_command)
app.command("predict")(predict.predict_command)


def main() -> None:
    """Entry point of the ``modelkeep`` console script."""
    warnings.showwarning = show_warning
    app()

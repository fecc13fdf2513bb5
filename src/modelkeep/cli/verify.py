"""``modelkeep verify SOURCE``: run every load check and print each as passed or failed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelkeep._modes import EnvMode
from modelkeep.cli._common import check_trusted, errors_exit, printable, stdout

# Printed after the checks of a bundle verified without --public-key: what they prove and
# what they cannot (a swapped label map passes every one of them).
UNSIGNED_NOTE = (
    "NOTE manifest text: not signed. The checks above prove the artifacts are the ones the "
    "manifest lists and that it agrees with what the model confirms, not that its text "
    "(labels, metrics, description) is what was saved: only a signature protects it "
    "(modelkeep sign; verify --public-key). A registry copy is checked against the manifest "
    "hash recorded when it was registered."
)


def verify_command(
    source: Annotated[
        str,
        typer.Argument(
            help="The bundle directory, or a registry reference (churn, churn:3, "
            "churn@production).",
        ),
    ],
    env: Annotated[
        EnvMode,
        typer.Option(help="Environment differences: warn (pass, report them), strict, ignore."),
    ] = "warn",
    format: Annotated[
        str | None, typer.Option(help="Which artifact to check (default: the first).")
    ] = None,
    trusted: Annotated[
        list[str] | None,
        typer.Option("--trusted", help="An exact type name to trust; repeatable."),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="Also check the signature (model.sig) against this public key (PEM).",
        ),
    ] = None,
) -> None:
    """Check a bundle as load() does; exit 0 when every check passes, 1 otherwise."""
    from modelkeep._load import verify

    check_trusted(trusted)
    with errors_exit():  # a reference naming nothing registered; a bundle's problems are checks
        results = verify(source, env=env, format=format, trusted=trusted, public_key=public_key)
    for check in results:
        mark = "[green]PASS[/green]" if check.passed else "[red]FAIL[/red]"
        stdout.print(f"{mark} {check.name}: ", end="")
        stdout.print(printable(check.detail), markup=False)
    if public_key is None:
        stdout.print(UNSIGNED_NOTE, markup=False)
    if not all(c.passed for c in results):
        raise typer.Exit(1)

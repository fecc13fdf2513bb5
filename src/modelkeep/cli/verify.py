"""``modelkeep verify PATH``: run every load check and print each as passed or failed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from modelkeep.cli._common import printable, stdout


def verify_command(
    path: Annotated[Path, typer.Argument(help="The bundle directory.")],
    env: Annotated[
        str,
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
    from modelkeep.bundle import verify

    mode: Literal["warn", "strict", "ignore"]
    if env not in ("warn", "strict", "ignore"):
        raise typer.BadParameter(f"expected one of warn, strict, ignore; got {env!r}")
    mode = env  # type: ignore[assignment]
    results = verify(path, env=mode, format=format, trusted=trusted, public_key=public_key)
    for check in results:
        mark = "[green]PASS[/green]" if check.passed else "[red]FAIL[/red]"
        stdout.print(f"{mark} {check.name}: ", end="")
        stdout.print(printable(check.detail), markup=False)
    if not all(c.passed for c in results):
        raise typer.Exit(1)

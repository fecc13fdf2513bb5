"""``modelkeep verify SOURCE``: run every load check and print each as passed or failed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelkeep._modes import EnvMode

if TYPE_CHECKING:
    from modelkeep._bundle import Check
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
    isolate: Annotated[
        bool,
        typer.Option(
            "--isolate",
            help="Run every check in a sandboxed worker process (see `modelkeep doctor`).",
        ),
    ] = False,
) -> None:
    """Check a bundle as load() does; exit 0 when every check passes, 1 otherwise."""
    from modelkeep._load import verify

    check_trusted(trusted)
    with errors_exit():  # a reference naming nothing registered; a bundle's problems are checks
        if isolate:
            results = _verify_isolated(source, env, format, trusted, public_key)
        else:
            results = verify(source, env=env, format=format, trusted=trusted, public_key=public_key)
    for check in results:
        mark = "[green]PASS[/green]" if check.passed else "[red]FAIL[/red]"
        stdout.print(f"{mark} {check.name}: ", end="")
        stdout.print(printable(check.detail), markup=False)
    if public_key is None:
        stdout.print(UNSIGNED_NOTE, markup=False)
    if not all(c.passed for c in results):
        raise typer.Exit(1)


def _verify_isolated(
    source: str,
    env: str,
    format: str | None,
    trusted: list[str] | None,
    public_key: Path | None,
) -> list[Check]:
    """verify --isolate: a reference resolved here, the checks run in the worker."""
    from modelkeep import sandbox
    from modelkeep._load import locate, resolve_source
    from modelkeep.registry.refs import Reference

    found = resolve_source(source)
    recorded = None
    if isinstance(found, Reference):
        registered = locate(found)
        found = registered.path
        recorded = registered.version.manifest_sha256
    return sandbox.verify(
        found,
        env=env,
        format=format,
        trusted=trusted,
        public_key=public_key,
        manifest_sha256=recorded,
    )

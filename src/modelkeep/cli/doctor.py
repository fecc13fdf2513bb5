"""``modelkeep doctor``: which sandbox mechanisms this machine supports (for --isolate)."""

from __future__ import annotations

import typer

from modelkeep.cli._common import printable, stdout


def doctor_command() -> None:
    """Try each confinement mechanism of the sandboxed worker in a throwaway process and
    say whether this machine supports it; exit 1 if isolate=True cannot run here."""
    from modelkeep.sandbox import probe

    found = probe()
    for capability in found:
        mark = "yes" if capability.supported else "no "
        stdout.print(
            printable(f"{mark} {capability.mechanism:<13} {capability.detail}"), markup=False
        )
    if found and all(c.supported for c in found):
        stdout.print("isolate=True: available", markup=False)
        return
    missing = ", ".join(c.mechanism for c in found if not c.supported) or "the worker"
    stdout.print(
        printable(f"isolate=True: unavailable (refused: {missing}); it fails closed here"),
        markup=False,
    )
    raise typer.Exit(1)

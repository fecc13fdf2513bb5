"""``modelkeep card REF [--html]``: a model card, from the registry or a bundle directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from modelkeep.cli._common import errors_exit, printable


def card_command(
    ref: Annotated[
        str, typer.Argument(help="A registry reference (churn@production) or a bundle directory.")
    ],
    html: Annotated[bool, typer.Option("--html", help="A standalone HTML page.")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
) -> None:
    """Print a model card: purpose, features, labels, metrics, data, environment,
    artifacts and parity, lineage and alias history."""
    from modelkeep.manifest import read_manifest
    from modelkeep.registry import Registry
    from modelkeep.registry.card import build_card, to_html, to_markdown

    with errors_exit():
        if os.path.isdir(ref):
            title, sections = build_card(read_manifest(Path(ref)))
            text = to_html(title, sections) if html else to_markdown(title, sections)
        else:
            with Registry() as registry:
                text = registry.card(ref, html=html)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        # The card escapes manifest text itself; lines are the document's structure.
        print(printable(text, keep="\n"), end="" if text.endswith("\n") else "\n")

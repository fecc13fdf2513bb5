"""``modelkeep card REF [--html]``: a model card, from the registry or a bundle directory."""

from __future__ import annotations

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
    from modelkeep._load import resolve_source
    from modelkeep.manifest import read_manifest
    from modelkeep.registry import Registry
    from modelkeep.registry.card import build_card, to_html, to_markdown
    from modelkeep.registry.refs import Reference

    with errors_exit():
        found = resolve_source(ref)
        if isinstance(found, Reference):
            with Registry() as registry:  # its card adds the version's lineage and aliases
                text = registry.card(str(found), html=html)
        else:
            title, sections = build_card(read_manifest(found))
            text = to_html(title, sections) if html else to_markdown(title, sections)
        if output is not None:
            output.write_text(text, encoding="utf-8")
    if output is None:
        # The card escapes manifest text itself; lines are the document's structure.
        print(printable(text, keep="\n"), end="" if text.endswith("\n") else "\n")

"""``modelkeep sign BUNDLE --key KEYFILE``: sign a bundle (writes BUNDLE/model.sig)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelkeep.cli._common import errors_exit, printable, stdout


def sign_command(
    bundle: Annotated[Path, typer.Argument(help="The bundle directory.")],
    key: Annotated[
        Path, typer.Option("--key", help="The private key (PEM), as `modelkeep keygen` writes.")
    ],
) -> None:
    """Sign every file of a bundle with a private key, in the OpenSSF Model Signing format."""
    from modelkeep.signing import sign

    with errors_exit():
        signed = sign(bundle, key)
    stdout.print(  # the file names are the bundle's, whoever made it
        printable(
            f"Signed {str(bundle)!r}: {signed.signature} covers {len(signed.files)} file(s) "
            f"({', '.join(signed.files)}); key id {signed.key_id[:16]}"
        ),
        markup=False,
    )

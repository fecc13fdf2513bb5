"""``modelkeep keygen --out KEYFILE``: a new EC P-256 key pair for signing bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelkeep.cli._common import errors_exit, stdout


def keygen_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Where to write the private key; the public key goes to the same path + .pub.",
        ),
    ],
) -> None:
    """Write a new signing key pair: KEYFILE (private, mode 0600) and KEYFILE.pub (public)."""
    from modelkeep.signing import key_id, keygen

    with errors_exit():
        private, public = keygen(out)
        identity = key_id(public)
    stdout.print(f"Private key: {private} (mode 0600; keep it secret, sign with it)", markup=False)
    stdout.print(f"Public key:  {public} (give it to whoever verifies)", markup=False)
    stdout.print(f"Key id:      {identity}", markup=False)

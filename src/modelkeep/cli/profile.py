"""``modelkeep profile BUNDLE --sample DATA``: add a reference profile as a new version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelkeep._modes import EnvMode
from modelkeep.cli._common import check_trusted, errors_exit, printable, stdout


def profile_command(
    bundle: Annotated[Path, typer.Argument(help="The bundle directory.")],
    sample: Annotated[
        Path,
        typer.Option(
            "--sample", help="The training data (.csv or .parquet) holding the model's columns."
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the new bundle here instead of in place."),
    ] = None,
    env: Annotated[
        EnvMode,
        typer.Option(help="Environment differences: warn (pass, report them), strict, ignore."),
    ] = "warn",
    trusted: Annotated[
        list[str] | None,
        typer.Option("--trusted", help="An exact type name to trust; repeatable."),
    ] = None,
) -> None:
    """Compute the reference profile of --sample and write it into the bundle.

    The bundle becomes its next version; its artifacts are copied byte for byte.
    """
    from modelkeep.monitor import profile

    check_trusted(trusted)
    with errors_exit():
        manifest = profile(bundle, sample, output=output, trusted=trusted, env=env)
    where = output if output is not None else bundle
    size = len(manifest.profile.model_dump_json()) if manifest.profile else 0
    stdout.print(
        printable(
            f"Profiled {manifest.name} as version {manifest.version} in {where} "
            f"({size:,} bytes of profile)"
        ),
        markup=False,
    )

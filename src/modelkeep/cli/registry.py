"""``modelkeep registry ...``: list, show, register, alias, history, diff, delete, check, gc,
rebuild.

Every command takes ``--json`` for scripting: listings print a JSON array of objects,
single results one JSON object. The registry is ``$MODELKEEP_HOME`` (default
``~/.modelkeep``). Exit status: 0 done, 1 an error (``Error: ...`` on stderr) or, for
``check``, problems found; 2 misuse.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from modelkeep._modes import EnvMode
from modelkeep.cli._common import cell, errors_exit, json_text, printable, stderr, stdout
from modelkeep.errors import ModelkeepWarning, format_names
from modelkeep.registry import ModelVersion, Registry
from modelkeep.registry.api import LOCK_TIMEOUT_S
from modelkeep.registry.diff import VersionDiff

app = typer.Typer(
    name="registry",
    help="Registered model versions, aliases and their history.",
    no_args_is_help=True,
)
alias_app = typer.Typer(name="alias", help="Move or remove an alias.", no_args_is_help=True)
app.add_typer(alias_app)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ByOption = Annotated[str | None, typer.Option("--by", help="Who does this (default: the OS user).")]
ReasonOption = Annotated[str | None, typer.Option("--reason", help="Why, for the audit log.")]
WaitOption = Annotated[
    float,
    typer.Option(
        "--wait", min=0, help="Seconds to wait for another process holding the registry lock."
    ),
]


@contextmanager
def _registry(lock_timeout: float = LOCK_TIMEOUT_S) -> Iterator[Registry]:
    with errors_exit(), Registry(lock_timeout=lock_timeout) as registry:
        yield registry


def _print_json(data: Any) -> None:
    print(json_text(json.dumps(data, indent=2, ensure_ascii=False)))


def _metrics_text(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))


def _versions_table(rows: list[ModelVersion]) -> None:
    from rich.table import Table

    table = Table()
    for column in ("name", "version", "schema", "aliases", "created", "registered by", "metrics"):
        table.add_column(column)
    for v in rows:
        table.add_row(
            cell(v.name),
            str(v.version),
            f"v{v.schema_version}",
            cell(", ".join(v.aliases)),
            cell(v.created_at[:19].replace("T", " ")),
            cell(v.registered_by),
            cell(_metrics_text(v.metrics)),
        )
    stdout.print(table)


@app.command("list")
def list_command(
    name: Annotated[
        str | None,
        typer.Argument(help="A model name: list its versions (default: every model's latest)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List every version of NAME, or the latest version of every model."""
    with _registry() as registry:
        rows = registry.versions(name) if name is not None else registry.models()
    if as_json:
        _print_json([v.to_dict() for v in rows])
    elif not rows:
        shown = "No versions registered." if name is None else f"No versions of {name!r}."
        stdout.print(printable(shown), markup=False)
    else:
        _versions_table(rows)


@app.command("show")
def show_command(
    ref: Annotated[str, typer.Argument(help="churn, churn:3 or churn@production.")],
    as_json: JsonOption = False,
) -> None:
    """Show one version: what the index records about it."""
    with _registry() as registry:
        version = registry.get(ref)
    if as_json:
        _print_json(version.to_dict())
        return
    from rich.table import Table

    table = Table(show_header=False, title=cell(version.ref), title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in version.to_dict().items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        table.add_row(cell(key), cell(shown))
    stdout.print(table)


@app.command("register")
def register_command(
    path: Annotated[Path, typer.Argument(help="The bundle directory.")],
    name: Annotated[
        str | None,
        typer.Option("--name", help="Register under this name (default: the manifest's)."),
    ] = None,
    by: ByOption = None,
    parent: Annotated[
        str | None, typer.Option("--parent", help="Reference of the version this one came from.")
    ] = None,
    env: Annotated[
        EnvMode, typer.Option(help="Environment differences: warn (default), strict, ignore.")
    ] = "warn",
    trusted: Annotated[
        list[str] | None, typer.Option("--trusted", help="An exact type name to trust; repeatable.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Verify a bundle, store a copy and index it as the name's next version."""
    with _registry() as registry, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ModelkeepWarning)
        version = registry.register(
            path, name, registered_by=by, parent=parent, env=env, trusted=trusted
        )
    for warning in caught:
        stderr.print(f"Warning: {printable(warning.message)}", markup=False)
    if as_json:
        _print_json(version.to_dict())
    else:
        stdout.print(f"Registered {printable(version.ref)}", markup=False)


@alias_app.command("set")
def alias_set_command(
    name: Annotated[str, typer.Argument(help="The model name.")],
    alias: Annotated[str, typer.Argument(help="The alias, e.g. production.")],
    version: Annotated[int, typer.Argument(help="The version number it should point to.")],
    reason: ReasonOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Point NAME@ALIAS at VERSION; the move is logged."""
    with _registry() as registry:
        event = registry.set_alias(name, alias, version, reason=reason, by=by)
    if as_json:
        _print_json(event.to_dict() if event is not None else None)
    elif event is None:
        stdout.print(printable(f"{name}@{alias} already points to {version}"), markup=False)
    else:
        before = "nothing" if event.from_version is None else str(event.from_version)
        stdout.print(printable(f"{name}@{alias}: {before} -> {version}"), markup=False)


@alias_app.command("rm")
def alias_rm_command(
    name: Annotated[str, typer.Argument(help="The model name.")],
    alias: Annotated[str, typer.Argument(help="The alias to remove.")],
    reason: ReasonOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove NAME@ALIAS; the removal is logged."""
    with _registry() as registry:
        event = registry.delete_alias(name, alias, reason=reason, by=by)
    if as_json:
        _print_json(event.to_dict())
    else:
        stdout.print(printable(f"{name}@{alias}: {event.from_version} -> removed"), markup=False)


@app.command("history")
def history_command(
    name: Annotated[str, typer.Argument(help="The model name.")],
    alias: Annotated[str | None, typer.Option("--alias", help="Only this alias.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every alias move of NAME, oldest first: alias, from, to, when, by, reason."""
    with _registry() as registry:
        events = registry.history(name, alias)
        ever_set = {e.alias for e in registry.history(name)} if alias and not events else set()
    if as_json:
        _print_json([e.to_dict() for e in events])
        return
    if not events:
        if alias is None or not ever_set:
            shown = f"No alias of {name!r} was ever set."
        else:
            shown = (
                f"Alias {alias!r} of {name!r} was never set; the aliases ever set are "
                f"{format_names(ever_set)}."
            )
        stdout.print(printable(shown), markup=False)
        return
    from rich.table import Table

    table = Table()
    for column in ("when", "alias", "from", "to", "by", "reason"):
        table.add_column(column)
    for e in events:
        table.add_row(
            cell(e.at),
            cell(e.alias),
            "-" if e.from_version is None else str(e.from_version),
            "removed" if e.to_version is None else str(e.to_version),
            cell(e.by),
            cell(e.reason or ""),
        )
    stdout.print(table)


@app.command("diff")
def diff_command(
    ref_a: Annotated[str, typer.Argument(help="The version to compare from.")],
    ref_b: Annotated[str, typer.Argument(help="The version to compare to.")],
    as_json: JsonOption = False,
) -> None:
    """What changed from REF_A to REF_B: features, labels, metrics, data, environment."""
    with _registry() as registry:
        result = registry.compare(ref_a, ref_b)
    if as_json:
        _print_json(result.to_dict())
        return
    _print_diff(result)


def _print_diff(result: VersionDiff) -> None:
    from rich.text import Text

    out = stdout
    out.print(Text(printable(f"{result.a} -> {result.b}"), style="bold"))
    if result.schema_version is not None and len(set(result.schema_version)) == 2:
        before, after = result.schema_version
        out.print(f"~ feature schema version: v{before} -> v{after}")
    diff = result.sections
    if not diff.changes:
        out.print("No differences.")
    features = diff.features
    lines = [f"+ feature {x.name} ({x.dtype})" for x in features.added]
    lines += [f"- feature {x.name} ({x.dtype})" for x in features.removed]
    lines += [f"~ feature {n}: {c.before} -> {c.after}" for n, c in features.retyped.items()]
    lines += [
        f"~ feature {n}: nullable {c.before} -> {c.after}" for n, c in features.nullable.items()
    ]
    if features.reordered:
        order = features.reordered
        lines.append(f"~ feature order: {order.before} -> {order.after}")
    for feature, categories in diff.categories.items():
        lines += [f"+ category {feature}={v!r}" for v in categories.added]
        lines += [f"- category {feature}={v!r}" for v in categories.removed]
    labels = diff.labels
    lines += [f"+ label {x.value!r} -> {x.label!r}" for x in labels.added]
    lines += [f"- label {x.value!r} -> {x.label!r}" for x in labels.removed]
    lines += [f"~ label {x.value!r}: {x.before!r} -> {x.after!r}" for x in labels.changed]
    for key, scalar in (("task", diff.task), ("model_type", diff.model_type)):
        if scalar:
            lines.append(f"~ {key}: {scalar.before} -> {scalar.after}")
    for metric, m in diff.metrics.items():
        delta = f" ({m.delta:+.4g})" if m.delta is not None else ""
        lines.append(f"  metric {metric}: {m.before} -> {m.after}{delta}")
    for key, change in diff.data.items():
        if change:
            lines.append(f"~ data {key}: {change.before} -> {change.after}")
    environment = diff.environment
    if environment.python:
        python = environment.python
        lines.append(f"~ python: {python.before} -> {python.after}")
    packages = environment.packages
    lines += [f"+ package {n}=={v}" for n, v in packages.added.items()]
    lines += [f"- package {n}=={v}" for n, v in packages.removed.items()]
    lines += [f"~ package {n}: {c.before} -> {c.after}" for n, c in packages.changed.items()]
    formats = diff.formats
    lines += [f"+ format {x}" for x in formats.added]
    lines += [f"- format {x}" for x in formats.removed]
    lines += [f"~ parity {x}: {c.before} -> {c.after}" for x, c in formats.parity.items()]
    for line in lines:  # every value in them comes from the two manifests
        out.print(printable(line), markup=False)


@app.command("delete")
def delete_command(
    ref: Annotated[str, typer.Argument(help="The exact version, e.g. churn:3.")],
    as_json: JsonOption = False,
) -> None:
    """Delete one version (refused while an alias points to it); its number is not reused."""
    with _registry() as registry:
        version = registry.delete(ref)
    if as_json:
        _print_json(version.to_dict())
    else:
        stdout.print(f"Deleted {printable(version.ref)}", markup=False)


@app.command("check")
def check_command(as_json: JsonOption = False, wait: WaitOption = LOCK_TIMEOUT_S) -> None:
    """Re-verify every stored bundle and the index; exit 1 if anything is wrong."""
    with _registry(wait) as registry:
        problems = registry.check()
        root = registry.location
    if as_json:
        _print_json([p.to_dict() for p in problems])
    elif not problems:
        stdout.print(printable(f"Registry at {root}: no problems found."), markup=False)
    else:
        for problem in problems:
            stdout.print(f"PROBLEM {printable(problem)}", markup=False)
    if problems:
        raise typer.Exit(1)


@app.command("gc")
def gc_command(as_json: JsonOption = False, wait: WaitOption = LOCK_TIMEOUT_S) -> None:
    """Remove what interrupted registrations and deletes left (never a registered version)."""
    with _registry(wait) as registry:
        removed = registry.gc()
    if as_json:
        _print_json(removed)
    else:
        stdout.print(f"Removed {len(removed)} unreferenced path(s).")
        for path in removed:
            stdout.print(f"  {printable(path)}", markup=False)


@app.command("migrate")
def migrate_command(as_json: JsonOption = False) -> None:
    """Upgrade the index's schema in place (a newer index is refused).

    A SQLite index is upgraded when it is next written anyway; an index on a database
    server (MODELKEEP_REGISTRY_URI) only by this command, run once for everyone.
    """
    with _registry() as registry:
        old, new = registry.migrate()
        where = registry.location
    if as_json:
        _print_json({"registry": where, "from": old, "to": new})
    elif old == new:
        stdout.print(
            printable(f"Index at {where}: schema version {new}, up to date."), markup=False
        )
    else:
        stdout.print(
            printable(f"Index at {where}: schema version {old} upgraded to {new}."), markup=False
        )


@app.command("copy")
def copy_command(
    source: Annotated[str, typer.Argument(help="The registry to copy from: a folder or URL.")],
    target: Annotated[
        str, typer.Argument(help="The registry to copy into: a folder or database URL.")
    ],
    artifacts: Annotated[
        str | None,
        typer.Option(
            "--artifacts",
            help="The target's artifact store (s3://bucket/prefix); default "
            "MODELKEEP_ARTIFACTS_URI when TARGET is a database URL.",
        ),
    ] = None,
    names: Annotated[
        list[str] | None, typer.Option("--name", help="Copy only this model; repeatable.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Copy versions, with their aliases and alias history, from SOURCE to TARGET.

    Version numbers are kept; every bundle is verified again as the target registers it.
    Start on a laptop, then move to a team registry:
    modelkeep registry copy ~/.modelkeep postgresql+psycopg://me@db/models --artifacts s3://models/registry
    """
    with errors_exit(), Registry(source) as src, Registry(target, artifacts=artifacts) as dst:
        copied = src.copy_to(dst, names=names)
        where = dst.location
    if as_json:
        _print_json(copied)
    else:
        stdout.print(printable(f"Copied {len(copied)} version(s) into {where}."), markup=False)
        for ref in copied:
            stdout.print(f"  {printable(ref)}", markup=False)


@app.command("rebuild")
def rebuild_command(as_json: JsonOption = False, wait: WaitOption = LOCK_TIMEOUT_S) -> None:
    """Recreate the index from the store: bundle records and the alias log.

    The index it replaces, if any, is kept beside it as registry.db.replaced-TIME. A team
    registry's (PostgreSQL) is replaced in one transaction, after whatever it holds that
    the artifact store lacks has been written there.
    """
    with _registry(wait) as registry:
        rows = registry.rebuild()
        names = sorted({v.name for v in rows})
        pointers = sum(len(registry.aliases(n)) for n in names)
        moves = sum(len(registry.history(n)) for n in names)
    if as_json:
        _print_json([v.to_dict() for v in rows])
        return
    stdout.print(
        f"Rebuilt the index: {len(rows)} version(s) of {len(names)} model(s), "
        f"{pointers} alias(es), {moves} alias move(s).",
        markup=False,
    )

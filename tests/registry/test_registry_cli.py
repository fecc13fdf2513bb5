"""`modelkeep registry ...` and `modelkeep card`, run in this process through their real code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import cli_runner
import modelkeep
from cli_runner import Ran

from .helpers import save_tiny


def run(env: dict[str, str], *args: str) -> Ran:
    return cli_runner.run(*args, env=env, columns=200)


def run_json(env: dict[str, str], *args: str) -> Any:
    result = run(env, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def location(env: dict[str, str]) -> str:
    """Where messages say the registry is: its folder, or its index's URL."""
    if "MODELKEEP_REGISTRY_URI" not in env:
        return env["MODELKEEP_HOME"]
    index, artifacts = env["MODELKEEP_REGISTRY_URI"], env["MODELKEEP_ARTIFACTS_URI"]
    with modelkeep.Registry(index, artifacts=artifacts) as registry:
        return registry.location


def test_register_list_alias_history_diff_delete(
    backend_env: dict[str, str], tmp_path: Path, tiny_bundle: Path
) -> None:
    env = backend_env
    first = run_json(env, "registry", "register", str(tiny_bundle), "--by", "alice")
    assert (first["name"], first["version"], first["registered_by"]) == ("tiny", 1, "alice")
    other = save_tiny(tmp_path / "other", metrics={"f1": 0.9}, data_version="d2")
    result = run(env, "registry", "register", str(other), "--name", "tiny")
    assert (result.returncode, result.stdout.strip()) == (0, "Registered tiny:2")

    moved = run_json(
        env, "registry", "alias", "set", "tiny", "production", "1", "--reason", "go live"
    )
    assert (moved["from_version"], moved["to_version"], moved["reason"]) == (None, 1, "go live")

    rows = run_json(env, "registry", "list", "tiny")
    assert [(r["name"], r["version"], r["aliases"]) for r in rows] == [
        ("tiny", 1, ["production"]),
        ("tiny", 2, []),
    ]
    for row in rows:
        assert {"created_at", "registered_by", "metrics"} <= set(row)
    assert [r["version"] for r in run_json(env, "registry", "list")] == [2]

    table = run(env, "registry", "list", "tiny")
    assert table.returncode == 0
    assert "production" in table.stdout and "f1=0.9" in table.stdout

    shown = run_json(env, "registry", "show", "tiny@production")
    assert (shown["version"], shown["data_version"]) == (1, "d1")

    diff = run_json(env, "registry", "diff", "tiny:1", "tiny:2")
    assert diff["data"]["data_version"] == {"from": "d1", "to": "d2"}
    assert diff["metrics"]["f1"]["delta"] == 0.9 - 0.8
    text = run(env, "registry", "diff", "tiny:1", "tiny:2")
    assert "~ data data_version: d1 -> d2" in text.stdout

    refused = run(env, "registry", "delete", "tiny:1")
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: Cannot delete 'tiny:1': expected a version no alias")
    deleted = run_json(env, "registry", "delete", "tiny:2")
    assert deleted["version"] == 2

    removed = run_json(env, "registry", "alias", "rm", "tiny", "production", "--reason", "rollback")
    assert (removed["from_version"], removed["to_version"]) == (1, None)
    history = run_json(env, "registry", "history", "tiny")
    assert [(e["from_version"], e["to_version"], e["reason"]) for e in history] == [
        (None, 1, "go live"),
        (1, None, "rollback"),
    ]
    assert run_json(env, "registry", "register", str(tiny_bundle))["version"] == 3
    assert run_json(env, "registry", "check") == []
    assert run_json(env, "registry", "gc") == []


def test_errors_exit_1_and_misuse_exits_2(backend_env: dict[str, str], tiny_bundle: Path) -> None:
    env = backend_env
    home = Path(env["MODELKEEP_HOME"])
    unknown = run(env, "registry", "show", "tiny:1")
    assert unknown.returncode == 1
    assert unknown.stderr == (
        f"Error: Reference 'tiny:1': no model named 'tiny' in the registry at {location(env)!r}; "
        "it holds no model. List models with `modelkeep registry list`, or register the bundle "
        "first.\n"
    )
    bad = run(env, "registry", "show", "tiny:x")
    assert bad.returncode == 1
    assert bad.stderr.startswith("Error: Reference 'tiny:x': the version after ':' must be a")
    misuse = run(env, "registry", "alias", "set", "tiny", "production", "three")
    assert misuse.returncode == 2
    assert not home.exists()


def test_check_exits_1_on_damage_and_gc_cleans_debris(
    backend_env: dict[str, str], tiny_bundle: Path
) -> None:
    env = backend_env
    home = Path(env["MODELKEEP_HOME"])
    run_json(env, "registry", "register", str(tiny_bundle))
    (home / "staging" / "left-by-a-crash").mkdir(parents=True)
    damaged = run(env, "registry", "check")
    assert damaged.returncode == 1
    assert damaged.stdout.startswith(
        "PROBLEM unreferenced: staging/left-by-a-crash: not in the index"
    )
    assert run_json(env, "registry", "gc") == ["staging/left-by-a-crash"]
    clean = run(env, "registry", "check")
    assert clean.returncode == 0
    assert clean.stdout == f"Registry at {location(env)}: no problems found.\n"


def test_card_markdown_html_and_bare_bundle(
    backend_env: dict[str, str], tmp_path: Path, tiny_bundle: Path
) -> None:
    env = backend_env
    run_json(env, "registry", "register", str(tiny_bundle))
    markdown = run(env, "card", "tiny:1")
    assert markdown.returncode == 0, markdown.stderr
    assert markdown.stdout.startswith("# tiny:1: model card\n")
    page = tmp_path / "card.html"
    result = run(env, "card", "tiny", "--html", "--output", str(page))
    assert (result.returncode, result.stdout) == (0, "")
    assert page.read_text().startswith("<!DOCTYPE html>")
    bare = run(env, "card", str(tiny_bundle))
    assert "- **registry version**: not registered" in bare.stdout


HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x9b31m"
SHOWN = "\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m"
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def test_manifest_and_registry_text_reach_no_terminal_raw(
    backend_env: dict[str, str], tmp_path: Path, tiny_bundle: Path
) -> None:
    env = backend_env
    hostile = save_tiny(
        tmp_path / "hostile",
        description="about" + HOSTILE,
        tags=["tag" + HOSTILE],
        labels={0: "No" + HOSTILE, 1: "Yes"},
        metrics={"f1" + HOSTILE: 0.5},
        data_version="d2" + HOSTILE,
    )
    outputs = [
        run(env, "registry", "register", str(tiny_bundle)),
        run(env, "registry", "register", str(hostile), "--by", "eve" + HOSTILE),
        run(env, "registry", "alias", "set", "tiny", "production", "2", "--reason", HOSTILE),
    ]
    for command in (
        ["registry", "list"],
        ["registry", "list", "tiny"],
        ["registry", "show", "tiny:2"],
        ["registry", "history", "tiny"],
        ["registry", "diff", "tiny:1", "tiny:2"],
        ["card", "tiny:2"],
        ["card", "tiny:2", "--html"],
        ["card", str(hostile)],
    ):
        result = run(env, *command)
        assert result.returncode == 0, (command, result.stderr)
        outputs.append(result)
        if command[0] == "registry":  # --json: the same values, valid JSON, no raw control
            as_json = run(env, *command, "--json")
            assert CONTROL.search(as_json.stdout) is None, (command, as_json.stdout)
            json.loads(as_json.stdout)
    for result in outputs:
        assert CONTROL.search(result.stdout + result.stderr) is None, (
            result.args,
            result.stdout,
        )
    shown = {" ".join(r.args): r.stdout for r in outputs}
    assert f"~ data data_version: d1 -> d2{SHOWN}" in shown["registry diff tiny:1 tiny:2"]
    assert f"about{SHOWN}" in shown["card tiny:2"]
    assert f"about{SHOWN}" in shown["card tiny:2 --html"]
    assert json.loads(run(env, "registry", "show", "tiny:2", "--json").stdout)["registered_by"] == (
        "eve" + HOSTILE
    )

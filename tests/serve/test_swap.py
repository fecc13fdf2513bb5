"""The alias watcher: a real registry in a tmp dir, real models, real threads."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import modelkeep
from modelkeep.serve.swap import AliasWatcher, SwapEvent
from modelkeep.serve.table import ModelTable, ServedModel, load_served
from registry.helpers import save_tiny, tiny_frame


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three versions of "tiny": the same data, different metrics (so different manifests)."""
    root = tmp_path_factory.mktemp("bundles")
    return [save_tiny(root / f"v{i}", metrics={"f1": 0.5 + i / 10}) for i in (1, 2, 3)]


@pytest.fixture
def registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bundles: list[Path]
) -> Iterator[modelkeep.Registry]:
    """A registry (also $MODELKEEP_HOME) with tiny:1..3 and tiny@production -> 1."""
    monkeypatch.setenv("MODELKEEP_HOME", str(tmp_path / "home"))
    with modelkeep.Registry(tmp_path / "home") as registry:
        for bundle in bundles:
            registry.register(bundle)
        registry.set_alias("tiny", "production", 1)
        yield registry


@pytest.fixture
def events() -> list[SwapEvent]:
    return []


@pytest.fixture
def watched(
    registry: modelkeep.Registry, events: list[SwapEvent]
) -> Iterator[tuple[ModelTable, AliasWatcher]]:
    table = ModelTable([load_served("tiny@production")])
    watcher = AliasWatcher(table, interval=0.05, on_event=events.append, registry=registry)
    watcher.watch(table.get("tiny"))
    yield table, watcher
    watcher.stop()


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Wait for the watcher thread (no time is asserted: 60 s means it hangs)."""
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"the watcher never {what}")
        time.sleep(0.01)


def tamper(registry: modelkeep.Registry, ref: str) -> None:
    """Flip one byte of a stored version's artifact."""
    artifact = registry.get(ref).path / "artifacts" / "pipeline.skops"
    artifact.chmod(0o644)
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))


def test_moving_the_alias_swaps_to_the_new_version(
    registry: modelkeep.Registry,
    watched: tuple[ModelTable, AliasWatcher],
    events: list[SwapEvent],
) -> None:
    table, watcher = watched
    before = table.get("tiny")
    assert watcher.watched == {"tiny": "tiny@production"}
    assert watcher.reload_now() == []  # the alias has not moved

    registry.set_alias("tiny", "production", 2)
    [event] = watcher.reload_now()
    assert (event.name, event.old_version, event.new_version, event.accepted) == (
        "tiny",
        "1",
        "2",
        True,
    )
    assert event.reason == "tiny@production moved"
    assert events == [event]
    served = table.get("tiny")
    assert (served.name, served.version, served.ref) == ("tiny", "2", "tiny@production")
    assert served.manifest_hash == registry.get("tiny:2").manifest_sha256
    assert served.model.manifest.metrics == {"f1": 0.7}
    frame, _ = tiny_frame()
    assert list(served.model.predict(frame)) == list(before.model.predict(frame))

    assert watcher.reload_now() == []  # never the same version twice
    assert table.get("tiny") is served


def test_a_tampered_version_is_refused_and_the_old_one_serves(
    registry: modelkeep.Registry,
    watched: tuple[ModelTable, AliasWatcher],
    events: list[SwapEvent],
) -> None:
    table, watcher = watched
    old = table.get("tiny")
    tamper(registry, "tiny:2")
    registry.set_alias("tiny", "production", 2)

    [event] = watcher.reload_now()
    assert (event.old_version, event.new_version, event.accepted) == ("1", "2", False)
    assert event.reason.startswith("IntegrityError: Artifact 'artifacts/pipeline.skops': sha256")
    assert table.get("tiny") is old  # still serving, and still predicting
    frame, _ = tiny_frame()
    assert len(old.model.predict(frame)) == len(frame)

    assert watcher.reload_now() == []  # refused once: not loaded again every poll
    registry.set_alias("tiny", "production", 3)
    [event] = watcher.reload_now()
    assert (event.old_version, event.new_version, event.accepted) == ("1", "3", True)
    assert [e.accepted for e in events] == [False, True]
    assert table.get("tiny").version == "3"


def test_the_thread_polls_and_follows(
    registry: modelkeep.Registry, watched: tuple[ModelTable, AliasWatcher]
) -> None:
    table, watcher = watched
    watcher.start()
    watcher.start()  # once only
    registry.set_alias("tiny", "production", 3)
    wait_for(lambda: table.get("tiny").version == "3", "swapped to version 3")
    registry.set_alias("tiny", "production", 1)
    wait_for(lambda: table.get("tiny").version == "1", "swapped back to version 1")
    watcher.stop()
    watcher.stop()


def test_a_deleted_alias_keeps_the_model_serving(
    registry: modelkeep.Registry, watched: tuple[ModelTable, AliasWatcher]
) -> None:
    table, watcher = watched
    served = table.get("tiny")
    registry.delete_alias("tiny", "production")
    assert watcher.reload_now() == []
    assert table.get("tiny") is served
    registry.set_alias("tiny", "production", 2)  # and it follows again once it is back
    assert [event.new_version for event in watcher.reload_now()] == ["2"]


def test_a_failing_event_handler_does_not_stop_the_swap(
    registry: modelkeep.Registry, watched: tuple[ModelTable, AliasWatcher]
) -> None:
    table, _ = watched

    def fail(event: SwapEvent) -> None:
        raise RuntimeError("metrics are down")

    watcher = AliasWatcher(table, on_event=fail, registry=registry)
    watcher.watch(table.get("tiny"))
    registry.set_alias("tiny", "production", 2)
    assert [event.accepted for event in watcher.reload_now()] == [True]
    assert table.get("tiny").version == "2"


def test_only_aliases_are_watched(
    bundles: list[Path],
    registry: modelkeep.Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    by_path = load_served(str(bundles[0]))
    pinned = load_served("tiny:2")
    # A directory that looks like an alias is a path, as modelkeep.load reads it.
    shutil.copytree(bundles[0], tmp_path / "tiny@production")
    monkeypatch.chdir(tmp_path)
    lookalike = load_served("tiny@production")
    assert lookalike.version == "1" and lookalike.model.manifest.metrics == {"f1": 0.6}
    table = ModelTable([by_path])
    watcher = AliasWatcher(table, registry=registry)
    for served in (by_path, pinned, lookalike):
        watcher.watch(served)
    assert watcher.watched == {}
    assert watcher.reload_now() == []


def test_concurrent_readers_always_see_a_complete_model(
    registry: modelkeep.Registry, watched: tuple[ModelTable, AliasWatcher]
) -> None:
    table, watcher = watched
    hashes = {str(v): registry.get(f"tiny:{v}").manifest_sha256 for v in (1, 2, 3)}
    frame, _ = tiny_frame(n=3)
    stop = threading.Event()
    seen: list[str] = []
    broken: list[str] = []

    def read() -> None:
        while not stop.is_set():
            served: ServedModel = table.get("tiny")
            if hashes.get(served.version) != served.manifest_hash:
                broken.append(f"version {served.version} with hash {served.manifest_hash}")
            elif served.model.manifest.metrics != {"f1": 0.5 + int(served.version) / 10}:
                broken.append(f"version {served.version} with another version's model")
            elif len(served.model.predict(frame)) != 3:
                broken.append("a model that does not predict")
            seen.append(served.version)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    try:
        for version in (2, 3, 1, 3, 2):
            registry.set_alias("tiny", "production", version)
            [event] = watcher.reload_now()
            assert event.accepted, event.reason
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert broken == []
    assert set(seen) >= {"2", "3"}
    assert table.get("tiny").version == "2"

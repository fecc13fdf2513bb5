"""The file layer refuses links and special files and writes whole or not at all; every
reader of a bundle reads its manifest with one error policy."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import pytest

import modelkeep
from modelkeep._fs import atomic_directory, copy_tree, open_nofollow, write_file
from modelkeep.errors import BundleLayoutError, BundleNotFoundError
from modelkeep.manifest import read_manifest


def _refusal(root: Path, entry: str, kind: str) -> str:
    return re.escape(
        f"Bundle {str(root)!r}: expected only regular files and directories, got {entry!r}, {kind}."
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "top.txt").write_bytes(b"top")
    (root / "sub" / "inner.bin").write_bytes(b"\x00inner")
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(b"secret")
    return folder


def test_copy_tree_copies_every_file_and_leaves_out_what_it_is_told(
    tree: Path, tmp_path: Path
) -> None:
    target = tmp_path / "copy"
    target.mkdir()
    copy_tree(tree, target, leave_out={"top.txt"})
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*")) == [
        "sub",
        "sub/inner.bin",
    ]
    assert (target / "sub" / "inner.bin").read_bytes() == b"\x00inner"


@pytest.mark.parametrize(
    ("entry", "kind"),
    [("link.txt", "a symbolic link"), ("sub/linked", "a symbolic link"), ("sub/pipe", "a FIFO")],
    ids=["file-link", "directory-link", "fifo"],
)
def test_copy_tree_refuses_links_and_fifos_before_copying(
    tree: Path, outside: Path, tmp_path: Path, entry: str, kind: str
) -> None:
    if entry == "link.txt":
        (tree / entry).symlink_to(outside / "secret.txt")
    elif entry == "sub/linked":
        (tree / entry).symlink_to(outside, target_is_directory=True)
    else:
        os.mkfifo(tree / entry)
    target = tmp_path / "copy"
    target.mkdir()
    with pytest.raises(BundleLayoutError, match=_refusal(tree, entry, kind)):
        copy_tree(tree, target)
    assert list(target.iterdir()) == []  # refused before anything was copied


def test_open_nofollow_refuses_a_link_to_a_file(tree: Path, outside: Path) -> None:
    (tree / "link.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(BundleLayoutError, match=_refusal(tree, "link.txt", "a symbolic link")):
        open_nofollow(tree, "link.txt")


def test_open_nofollow_refuses_a_linked_directory_on_the_path(tree: Path, outside: Path) -> None:
    (tree / "linked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(BundleLayoutError, match=_refusal(tree, "linked", "a symbolic link")):
        open_nofollow(tree, "linked/secret.txt")


def test_open_nofollow_refuses_a_fifo_without_hanging(tree: Path) -> None:
    os.mkfifo(tree / "sub" / "pipe")  # no writer: a blocking open would wait forever
    with pytest.raises(BundleLayoutError, match=_refusal(tree, "sub/pipe", "a FIFO")):
        open_nofollow(tree, "sub/pipe")


def test_open_nofollow_reads_a_regular_file(tree: Path) -> None:
    with open_nofollow(tree, "sub/inner.bin") as stream:
        assert stream.read() == b"\x00inner"


def test_write_file_never_shows_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    old, new = b"a" * (4 << 20), b"b" * (4 << 20)
    write_file(target, old)
    whole: list[bool] = []
    done, started = threading.Event(), threading.Event()

    def read() -> None:
        while not done.is_set():
            data = target.read_bytes()
            whole.append(data in (old, new))
            started.set()

    reader = threading.Thread(target=read)
    reader.start()
    started.wait(timeout=5)
    try:
        for data in (new, old, new, old, new):
            write_file(target, data)
    finally:
        done.set()
        reader.join()
    assert target.read_bytes() == new
    assert whole and all(whole)  # every read found a whole file, old or new
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]  # no temporary left


def test_write_file_exclusive_never_replaces(tmp_path: Path) -> None:
    target = tmp_path / "key"
    write_file(target, b"first", mode=0o600, exclusive=True)
    with pytest.raises(FileExistsError):
        write_file(target, b"second", mode=0o600, exclusive=True)
    assert target.read_bytes() == b"first"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["key"]


@pytest.mark.parametrize("fail", [False, True], ids=["success", "failure"])
def test_the_swap_leaves_exactly_one_of_old_and_new(tmp_path: Path, fail: bool) -> None:
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "version").write_text("old")
    expected = pytest.raises(RuntimeError, match="the writer failed") if fail else nullcontext()
    with expected, atomic_directory(target, replace=True) as staging:
        (staging / "version").write_text("new")
        if fail:
            raise RuntimeError("the writer failed")
    assert (target / "version").read_text() == ("old" if fail else "new")
    assert sorted(p.name for p in target.iterdir()) == ["version"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no staging, no old copy


def _register(bundle: Path) -> object:
    with modelkeep.Registry(bundle.parent / "registry") as registry:
        return registry.register(bundle, name="m")


def _sign(bundle: Path) -> object:
    private, _ = modelkeep.keygen(bundle.parent / "key")
    return modelkeep.sign(bundle, private)


@pytest.mark.parametrize(
    "read",
    [
        modelkeep.load,
        modelkeep.convert,
        read_manifest,
        modelkeep.scan,
        _register,
        _sign,
    ],
    ids=["load", "convert", "manifest.read_manifest", "scan", "register", "sign"],
)
def test_a_missing_manifest_is_the_same_error_for_every_reader(
    tmp_path: Path, read: Callable[[Path], object]
) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "artifacts").mkdir(parents=True)
    message = (
        f"No modelkeep bundle at {str(bundle)!r}: modelkeep.json is missing. Expected a "
        "directory holding modelkeep.json, as written by modelkeep.save()."
    )
    with pytest.raises(BundleNotFoundError, match=re.escape(message)):
        read(bundle)


def test_replacing_a_directory_that_is_gone_puts_the_new_one_in_place(tmp_path: Path) -> None:
    """A replace whose target was removed meanwhile (or never existed) is a plain move:
    the exchange of two directories needs both, and failed with a raw ENOENT."""
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_directory(target, replace=True) as staging:
        (staging / "new.txt").write_text("new")
        for entry in target.iterdir():  # another process removes the target meanwhile
            entry.unlink()
        target.rmdir()
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no staging left
    fresh = tmp_path / "never-there"
    with atomic_directory(fresh, replace=True) as staging:
        (staging / "new.txt").write_text("new")
    assert (fresh / "new.txt").read_text() == "new"

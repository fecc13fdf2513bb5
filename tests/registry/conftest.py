"""Registry fixtures: one tiny bundle saved once per module, a fresh registry per test.

``tests/registry`` is a package so that this conftest is imported as
``registry.conftest`` and does not shadow ``tests/conftest.py``, which other test modules
import by the name ``conftest``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import modelkeep

from .helpers import save_tiny


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MODELKEEP_HOME, so the default registry is never the real ~/.modelkeep."""
    root = tmp_path / "home"
    monkeypatch.setenv("MODELKEEP_HOME", str(root))
    return root


@pytest.fixture
def registry(home: Path) -> Iterator[modelkeep.Registry]:
    with modelkeep.Registry() as reg:
        yield reg

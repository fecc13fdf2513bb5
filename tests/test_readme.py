"""Every Python example in the README runs, in order, as a user would paste it."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples() -> None:
    assert len(_python_blocks()) >= 2


def test_readme_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(ROOT / "examples" / "churn"))
    try:
        from data import FEATURES, generate
        from train import train
    finally:
        sys.path.pop(0)
    data = generate(1500, seed=1)
    pipeline, _, x_train = train(data, classifier="random_forest", n_estimators=30, seed=1)
    namespace: dict[str, Any] = {
        "pipeline": pipeline,
        "X_train": x_train,
        "new_customers": generate(5, seed=9)[FEATURES],
    }
    monkeypatch.chdir(tmp_path)
    # The registry examples use the default registry: never the real ~/.modelkeep here.
    monkeypatch.setenv("MODELKEEP_HOME", str(tmp_path / "modelkeep_home"))
    for block in _python_blocks():
        exec(compile(block, str(README), "exec"), namespace)
    assert (tmp_path / "churn_model" / "modelkeep.json").is_file()

"""``examples/churn/data.py`` for the tests, under a name of its own (the example scripts
import it as ``data``, which would clash with other modules of that name)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "churn_example_data", ROOT / "examples" / "churn" / "data.py"
    )
    if spec is None or spec.loader is None:
        raise ImportError("examples/churn/data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


churn = _load()

"""The prediction service: ``modelkeep serve`` (extra ``modelkeep[serve]``).

One prediction core behind three protocols (``/v1`` of modelkeep, MLflow's
``/invocations``, the Open Inference Protocol v2), with schema-checked input, limits,
API keys, Prometheus metrics, adaptive batching, hot swaps of registry aliases and a
prediction log. Importing this package imports neither FastAPI nor uvicorn: the app is
built by :func:`modelkeep.serve.app.create_app` and run by :mod:`modelkeep.serve.server`.

    >>> from modelkeep.serve import read_log
    >>> read_log("logs/", since="2026-01-01")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelkeep.serve.table import ModelTable, ServedModel, UnknownModelError, load_served

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ModelTable", "ServedModel", "UnknownModelError", "load_served", "read_log"]


def read_log(directory: Any, since: Any = None, until: Any = None) -> pd.DataFrame:
    """The prediction log written by ``modelkeep serve --log DIR``, as a DataFrame
    (see :func:`modelkeep.serve.log.read_log`)."""
    import importlib

    # Imported by name: the log module (pyarrow behind it) loads only when a log is read.
    log = importlib.import_module("modelkeep.serve.log")
    frame: pd.DataFrame = log.read_log(directory, since=since, until=until)
    return frame

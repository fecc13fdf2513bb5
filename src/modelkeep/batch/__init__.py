"""Batch scoring: every row of CSV or Parquet files through a verified model.

:func:`predict_file` streams a file, a directory or a glob in chunks through the model's
own validation and writes the scores atomically (the ``modelkeep predict`` command);
with ``engine="dask"`` the same scoring runs on a Dask cluster. :func:`predict_dask`
scores a ``dask.dataframe.DataFrame`` a pipeline already has.

Example:
    >>> from modelkeep.batch import predict_file
    >>> summary = predict_file("churn@production", "customers/", "scores.parquet",
    ...                        keep_columns=["customer_id"], on_error="skip")
    >>> print("\\n".join(summary.lines()))
"""

from __future__ import annotations

from modelkeep.batch._dask import load_count, predict_dask
from modelkeep.batch._errors import BatchInputError, BatchOutputError, RejectedRowError
from modelkeep.batch._local import DEFAULT_CHUNK_SIZE, predict_file
from modelkeep.batch._summary import Summary

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "BatchInputError",
    "BatchOutputError",
    "RejectedRowError",
    "Summary",
    "load_count",
    "predict_dask",
    "predict_file",
]

"""The errors of batch scoring: they live in :mod:`modelkeep.errors` with every other
error; re-exported here for ``modelkeep.batch``.

Each carries its facts as attributes and pickles with them (``__reduce__``), so an error
raised while scoring a partition on a Dask worker reaches the client whole.
"""

from __future__ import annotations

from modelkeep.errors import BatchInputError, BatchOutputError, RejectedRowError

__all__ = ["BatchInputError", "BatchOutputError", "RejectedRowError"]

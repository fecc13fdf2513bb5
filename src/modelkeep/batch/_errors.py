"""The errors of batch scoring, in the families of :mod:`modelkeep.errors`.

Each carries its facts as attributes and pickles with them (``__reduce__``), so an error
raised while scoring a partition on a Dask worker reaches the client whole.
"""

from __future__ import annotations

from typing import Any

from modelkeep.errors import InputError, InputProblem, SchemaError

__all__ = ["BatchInputError", "BatchOutputError", "RejectedRowError"]


class BatchInputError(InputError, ValueError):
    """An input that cannot be scored as a whole: missing, an empty glob, an unknown
    extension, a column the model needs that the file lacks, an unreadable file.

    ``path`` names the input (a file, a directory or a glob), ``problem`` what is wrong.
    """

    def __init__(self, path: str, problem: str, hint: str = "") -> None:
        self.path = path
        self.problem = problem
        self.hint = hint
        super().__init__(f"Input {path!r}: {problem}.{' ' + hint if hint else ''}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.problem, self.hint))


class BatchOutputError(InputError, OSError):
    """An output that cannot be written: it exists (without ``overwrite``), its folder is
    missing or not writable, or it names one of the inputs."""

    def __init__(self, path: str, problem: str, hint: str = "") -> None:
        self.path = path
        self.problem = problem
        self.hint = hint
        super().__init__(f"Output {path!r}: {problem}.{' ' + hint if hint else ''}")

    def __str__(self) -> str:  # OSError's own __str__ would show errno fields
        return str(self.args[0])

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.problem, self.hint))


class RejectedRowError(SchemaError):
    """A row that fails the model's schema with ``on_error="fail"``.

    ``path`` is the input file (or ``"partition N"`` for :func:`~modelkeep.batch.predict_dask`),
    ``line`` the row's 1-based number among the data rows of that file (the header is not
    counted), ``problem`` the :class:`~modelkeep.errors.InputProblem` validation found.
    """

    def __init__(self, path: str, line: int, problem: InputProblem) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        message = (
            f"Input {path!r}: data row {line} (1-based, header not counted): "
            f"{problem.message.rstrip('.')}. Fix the row, or pass on_error='skip' "
            "(--on-error skip) to write rejected rows with their reasons beside the output "
            "and score the rest."
        )
        super().__init__(
            message,
            column=problem.column,
            row=line,
            kind=problem.kind,
            problems=(problem,),
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.line, self.problem))

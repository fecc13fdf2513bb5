"""Files in and out of batch scoring: finding the inputs, reading them in chunks, writing
the output atomically.

Every reader yields :class:`pyarrow.Table` chunks holding only the columns scoring needs
(the model's features and the kept columns). CSV columns are read as text and converted
by :mod:`modelkeep.batch._scoring` (so a bad value rejects its row, not the whole file);
Parquet columns keep their types. Row numbers are 1-based data rows of each file (a CSV's
header is not counted).
"""

from __future__ import annotations

import csv
import glob
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final, Literal

from modelkeep._fs import fsync, fsync_dir
from modelkeep._optional import require
from modelkeep.batch._errors import BatchInputError, BatchOutputError
from modelkeep.errors import InvalidChoiceError, format_names

__all__ = [
    "FORMATS",
    "NULL_VALUES",
    "AtomicFile",
    "Chunk",
    "FileFormat",
    "InputFile",
    "check_output",
    "find_inputs",
    "format_of",
    "import_pyarrow",
    "read_chunks",
    "rejected_path",
]

FileFormat = Literal["csv", "parquet"]
FORMATS: Final = ("csv", "parquet")
_EXTENSIONS: Final[dict[str, FileFormat]] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
#: What a CSV cell holding a missing value looks like (pyarrow's defaults, which pandas'
#: read_csv also reads as missing); set explicitly so both engines agree.
NULL_VALUES: Final = (
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "n/a",
    "nan",
    "null",
)
_GLOB_CHARACTERS: Final = frozenset("*?[")


def import_pyarrow() -> ModuleType:
    """pyarrow with its csv and parquet modules, or the error naming the extra."""
    return require(
        "parquet",
        "pyarrow",
        "pyarrow.csv",
        "pyarrow.parquet",
        "pyarrow.compute",
        feature="Batch scoring",
        packages="pyarrow",
    )


def format_of(path: Path, given: str | None, role: str) -> FileFormat:
    """``given`` (``"csv"`` or ``"parquet"``) or the format ``path``'s extension names."""
    if given is not None:
        if given not in FORMATS:
            raise InvalidChoiceError(given, FORMATS, f"{role} format")
        return given  # type: ignore[return-value]
    found = _EXTENSIONS.get(path.suffix.lower())
    if found is None:
        error = BatchOutputError if role == "output" else BatchInputError
        raise error(
            str(path),
            f"expected a .csv, .parquet or .pq file, got the extension {path.suffix or '(none)'!r}",
            f"Rename it, or pass --{role}-format csv|parquet ({role}_format=...).",
        )
    return found


@dataclass(frozen=True)
class InputFile:
    """One input file, its format and size in bytes."""

    path: Path
    format: FileFormat
    size: int


def find_inputs(source: str | os.PathLike[str], given: str | None) -> list[InputFile]:
    """The files ``source`` names: one file, every CSV/Parquet file of a directory, or the
    files a glob matches, sorted by name.

    Raises:
        BatchInputError: nothing there, an empty directory or glob, an unknown extension,
            or a directory mixing CSV and Parquet without ``given``.
    """
    text = os.fspath(source)
    path = Path(text)
    if path.is_dir():
        candidates = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if given is None:
            candidates = [p for p in candidates if p.suffix.lower() in _EXTENSIONS]
        if not candidates:
            raise BatchInputError(
                text, "the directory holds no .csv, .parquet or .pq file", "Check the path."
            )
        files = [_input_file(p, given) for p in candidates]
        kinds = {f.format for f in files}
        if len(kinds) > 1:
            raise BatchInputError(
                text,
                f"the directory mixes formats ({', '.join(sorted(kinds))})",
                "Score each format separately (a glob such as 'dir/*.csv').",
            )
        return files
    if path.is_file():
        return [_input_file(path, given)]
    if _GLOB_CHARACTERS & set(text):
        matches = sorted(Path(m) for m in glob.glob(text) if Path(m).is_file())
        if not matches:
            raise BatchInputError(text, "the pattern matches no file", "Check the pattern.")
        files = [_input_file(p, given) for p in matches]
        kinds = {f.format for f in files}
        if len(kinds) > 1:
            raise BatchInputError(
                text,
                f"the pattern matches files of several formats ({', '.join(sorted(kinds))})",
                "Narrow the pattern to one format.",
            )
        return files
    raise BatchInputError(
        text, "no such file or directory", "Give a CSV or Parquet file, a directory or a glob."
    )


def _input_file(path: Path, given: str | None) -> InputFile:
    return InputFile(path, format_of(path, given, "input"), path.stat().st_size)


# ------------------------------------------------------------------------------ columns


def column_names(source: InputFile) -> list[str]:
    """The columns of a file, read from its header (CSV) or footer (Parquet)."""
    try:
        if source.format == "parquet":
            pa = import_pyarrow()
            return list(pa.parquet.ParquetFile(source.path).schema_arrow.names)
        with open(source.path, newline="", encoding="utf-8-sig") as stream:
            header = next(csv.reader(stream), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BatchInputError(str(source.path), f"cannot be read ({exc})") from exc
    except Exception as exc:  # pyarrow's ArrowInvalid and friends: a damaged file
        raise BatchInputError(str(source.path), f"cannot be read as Parquet ({exc})") from exc
    if header is None:
        raise BatchInputError(str(source.path), "the file is empty (no header line)")
    return header


def check_columns(source: InputFile, needed: Sequence[str], features: Sequence[str]) -> None:
    """Refuse a file lacking a column scoring needs, or with a name twice (whole-file
    problems: refused whatever ``on_error`` says)."""
    names = column_names(source)
    seen = set(names)
    twice = (
        sorted({name for name in names if names.count(name) > 1}) if len(seen) < len(names) else []
    )
    if twice:
        raise BatchInputError(
            str(source.path),
            f"the column(s) {format_names(twice)} appear more than once",
            "Rename or drop the duplicates.",
        )
    missing = [name for name in needed if name not in seen]
    if missing:
        lacking = [n for n in missing if n in features]
        what = (
            f"is missing {len(lacking)} of the model's {len(features)} columns: "
            f"{format_names(lacking)}"
            if lacking
            else f"has no column {format_names(missing)} to keep"
        )
        raise BatchInputError(
            str(source.path),
            what,
            "Every input file needs every feature the model was fitted on (with empty "
            "cells for unknown values)"
            + ("" if lacking else "; check --keep-columns")
            + ". This is a whole-file problem, refused in skip mode too.",
        )


# ------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class Chunk:
    """Rows read from one file: the table, the 1-based number of its first data row, and
    how far into the file reading has got (bytes for CSV, rows for Parquet)."""

    table: Any  # pyarrow.Table
    first_row: int
    progress: int


def read_chunks(source: InputFile, columns: Sequence[str], chunk_size: int) -> Iterator[Chunk]:
    """The file's rows in chunks of at most ``chunk_size`` rows, only ``columns`` read."""
    if source.format == "parquet":
        yield from _parquet_chunks(source, columns, chunk_size)
    else:
        yield from _csv_chunks(source, columns, chunk_size)


def _parquet_chunks(source: InputFile, columns: Sequence[str], chunk_size: int) -> Iterator[Chunk]:
    pa = import_pyarrow()
    try:
        reader = pa.parquet.ParquetFile(source.path)
    except Exception as exc:
        raise BatchInputError(str(source.path), f"cannot be read as Parquet ({exc})") from exc
    first = 1
    try:
        with reader:
            for batch in reader.iter_batches(batch_size=chunk_size, columns=list(columns)):
                table = pa.Table.from_batches([batch])
                yield Chunk(table, first, first - 1 + table.num_rows)
                first += table.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise BatchInputError(
            str(source.path), f"cannot be read past data row {first - 1} ({exc})"
        ) from exc


def csv_options(columns: Sequence[str], block_size: int) -> tuple[Any, Any, Any]:
    """(read, parse, convert) options shared by the local and Dask engines: every column
    read as text, missing values as :data:`NULL_VALUES`."""
    pa = import_pyarrow()
    # One parsing thread: parsing is a small share of scoring, and on a machine whose cores
    # the model already uses, parser threads only add contention (measured: more CPU time).
    read = pa.csv.ReadOptions(block_size=block_size, use_threads=False)
    parse = pa.csv.ParseOptions()
    convert = pa.csv.ConvertOptions(
        column_types={name: pa.string() for name in columns},
        include_columns=list(columns),
        null_values=list(NULL_VALUES),
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    return read, parse, convert


def block_size_for(path: Path, chunk_size: int) -> int:
    """A CSV block size (bytes) holding about ``chunk_size`` rows, from the first lines."""
    with open(path, "rb") as stream:
        head = stream.read(1 << 16)
    lines = max(head.count(b"\n") - 1, 1)
    per_row = max(len(head) // (lines + 1), 16)
    return int(min(max(per_row * chunk_size * 1.1, 1 << 16), 1 << 28))


def _csv_chunks(source: InputFile, columns: Sequence[str], chunk_size: int) -> Iterator[Chunk]:
    pa = import_pyarrow()
    read, parse, convert = csv_options(columns, block_size_for(source.path, chunk_size))
    first = 1
    try:
        stream = pa.OSFile(str(source.path), "rb")
    except OSError as exc:
        raise BatchInputError(str(source.path), f"cannot be read ({exc})") from exc
    try:
        with stream:
            reader = pa.csv.open_csv(
                stream, read_options=read, parse_options=parse, convert_options=convert
            )
            for batch in reader:
                for start in range(0, batch.num_rows, chunk_size):
                    piece = batch.slice(start, chunk_size)
                    table = pa.Table.from_batches([piece])
                    yield Chunk(table, first, stream.tell())
                    first += piece.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise BatchInputError(
            str(source.path),
            f"cannot be read as CSV after data row {first - 1} ({exc})",
            "Check the file's quoting and that every line has the header's number of fields.",
        ) from exc


# ------------------------------------------------------------------------------ writing


def rejected_path(output: Path) -> Path:
    """Where skip mode writes rejected rows: beside ``output`` (``scores.rejected.csv`` for
    ``scores.csv``, ``scores.rejected.parquet`` for ``scores.parquet`` or a directory)."""
    suffix = output.suffix if output.suffix.lower() in _EXTENSIONS else ".parquet"
    stem = (
        output.name[: -len(output.suffix)] if output.suffix.lower() in _EXTENSIONS else output.name
    )
    return output.with_name(f"{stem}.rejected{suffix}")


def check_output(output: Path, *, overwrite: bool, inputs: Sequence[InputFile]) -> None:
    """Refuse, before anything is read: an existing output without ``overwrite``, a missing
    or read-only folder, an output that is one of the inputs."""
    if any(output.resolve() == source.path.resolve() for source in inputs):
        raise BatchOutputError(
            str(output), "it is one of the inputs", "Write the scores to another path."
        )
    if os.path.lexists(output) and not overwrite:
        raise BatchOutputError(
            str(output),
            "it already exists",
            "Pass --overwrite (overwrite=True) to replace it atomically, or choose another path.",
        )
    parent = output.parent
    if not parent.is_dir():
        raise BatchOutputError(
            str(output), f"its folder {str(parent)!r} does not exist", "Create it first."
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BatchOutputError(
            str(output),
            f"its folder {str(parent)!r} is not writable",
            "Choose a folder you can write to.",
        )


class AtomicFile:
    """A temporary file beside ``target``, renamed onto it by :meth:`commit`.

    Until then nothing is at ``target`` (or the old file stays); :meth:`discard` (also on
    any exception in a ``with`` block) removes the temporary file.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        self.temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            fd = os.open(self.temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:
            raise BatchOutputError(
                str(target), f"cannot be written ({exc.strerror or exc})"
            ) from exc
        os.close(fd)

    def commit(self, *, overwrite: bool) -> None:
        """fsync the file and move it into place (never replacing a file unless
        ``overwrite``: the check made before reading is made again here)."""
        fsync(self.temporary)
        if overwrite:
            os.replace(self.temporary, self.target)
        else:
            try:
                os.link(self.temporary, self.target)
            except FileExistsError as exc:
                raise BatchOutputError(
                    str(self.target),
                    "it appeared while scoring",
                    "Pass --overwrite (overwrite=True) to replace it, or choose another path.",
                ) from exc
            os.unlink(self.temporary)
        fsync_dir(self.target.parent)

    def discard(self) -> None:
        self.temporary.unlink(missing_ok=True)

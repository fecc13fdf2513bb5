"""The request and response shapes of the three protocols, around one prediction core.

- modelkeep's ``/v1``: ``{"instances": [{column: value}, ...]}`` or ``{"dataframe_split":
  {"columns": [...], "data": [[...]]}}``; per row the label and the probabilities by label.
- MLflow's scoring protocol (``/invocations``): ``dataframe_split``, ``dataframe_records``,
  ``instances`` or ``inputs``; ``{"predictions": [...]}`` back, as ``mlflow models serve``.
- The Open Inference Protocol v2 (KServe, Triton, MLServer): one named input per feature
  column, ``{"outputs": [{"name": "label", ...}, {"name": "probabilities", ...}]}`` back.

Each parser turns a decoded JSON body into what ``Model.prepare`` takes (a list of records
or a dict of columns) and its row count, or raises a 422 naming what is wrong. Nothing a
request names is imported, evaluated or unpickled: bodies are JSON, decoded to plain data.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson

from modelkeep.serve.errors import HTTPProblem, request_problem

__all__ = [
    "decode_json",
    "parse_mlflow",
    "parse_v1",
    "parse_v2",
]

Parsed = tuple[Any, int]  # (records or columns, number of rows)


def decode_json(body: bytes) -> Any:
    """The JSON document in ``body``; a 400 if it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:  # orjson refuses integers beyond 64 bits, which are valid JSON
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise HTTPProblem(
            400, "malformed_json", f"The request body is not valid JSON: {exc}."
        ) from None


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _check_rows(rows: int, limit: int) -> None:
    if rows > limit:
        raise HTTPProblem(
            413,
            "too_many_rows",
            f"The request holds {rows} rows; this server takes at most {limit} per request "
            "(--max-rows). Split it into several requests.",
        )


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise request_problem(
            f"{what}: expected a JSON object, got {_kind(body)}.",
            expected="object",
            received=_kind(body),
        )
    return body


def _records(value: Any, field: str, limit: int) -> Parsed:
    """A list of JSON objects, one per row."""
    if not isinstance(value, list):
        raise request_problem(
            f"{field}: expected an array of objects (one per row), got {_kind(value)}.",
            column=None,
            expected="array of objects",
            received=_kind(value),
        )
    _check_rows(len(value), limit)
    for row, record in enumerate(value):
        if not isinstance(record, dict):
            raise request_problem(
                f"{field}[{row}]: expected an object of column -> value, got {_kind(record)}.",
                row=row,
                expected="object",
                received=_kind(record),
            )
    return value, len(value)


def _split(value: Any, field: str, limit: int) -> Parsed:
    """``{"columns": [...], "data": [[...], ...]}`` (pandas' ``orient="split"``) as columns."""
    split = _object(value, field)
    unknown = sorted(set(split) - {"columns", "data", "index"})
    if unknown:
        raise request_problem(
            f"{field}: unexpected keys {unknown}; expected 'columns' and 'data'.",
            expected="columns, data",
            received=", ".join(unknown),
        )
    columns, data = split.get("columns"), split.get("data")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise request_problem(
            f"{field}.columns: expected an array of column names.",
            expected="array of strings",
            received=_kind(columns),
        )
    twice = sorted(c for c, n in Counter(columns).items() if n > 1)  # linear: columns is input
    if twice:
        raise request_problem(
            f"{field}.columns: {twice} appear more than once.",
            column=twice[0],
            expected="each column once",
            received="duplicates",
        )
    if not isinstance(data, list):
        raise request_problem(
            f"{field}.data: expected an array of rows.",
            expected="array of arrays",
            received=_kind(data),
        )
    _check_rows(len(data), limit)
    width = len(columns)
    for row, values in enumerate(data):
        if not isinstance(values, list) or len(values) != width:
            got = f"array of {len(values)}" if isinstance(values, list) else _kind(values)
            raise request_problem(
                f"{field}.data[{row}]: expected an array of {width} values (one per column), "
                f"got {got}.",
                row=row,
                expected=f"array of {width} values",
                received=got,
            )
    return {name: [values[i] for values in data] for i, name in enumerate(columns)}, len(data)


def _columns(value: dict[str, Any], field: str, limit: int) -> Parsed:
    """``{column: [values ...]}``, every column of the same length."""
    lengths = set()
    for name, values in value.items():
        if not isinstance(values, list):
            raise request_problem(
                f"{field}.{name}: expected an array of values (one per row), got {_kind(values)}.",
                column=name,
                expected="array",
                received=_kind(values),
            )
        lengths.add(len(values))
    if len(lengths) > 1:
        raise request_problem(
            f"{field}: columns of different lengths {sorted(lengths)}.",
            expected="columns of one length",
            received=", ".join(map(str, sorted(lengths))),
        )
    rows = lengths.pop() if lengths else 0
    _check_rows(rows, limit)
    return value, rows


def _nested(row: int, column: str, value: Any) -> HTTPProblem:
    return request_problem(
        f"Column {column!r}: row {row}: expected a single value (a number, string, boolean "
        f"or null), got {_kind(value)}.",
        row=row,
        column=column,
        expected="a single value",
        received=_kind(value),
        kind="invalid_value",
    )


def scalars_only(X: Any) -> None:
    """Refuse a cell holding an array or an object: every feature takes single values.

    Checked here, before the schema, so that a deeply nested cell never reaches code that
    would describe it recursively.
    """
    if isinstance(X, dict):
        for column, values in X.items():
            for row, value in enumerate(values):
                if isinstance(value, (list, dict)):
                    raise _nested(row, column, value)
        return
    for row, record in enumerate(X):
        for column, value in record.items():
            if isinstance(value, (list, dict)):
                raise _nested(row, column, value)


def _one_key(body: dict[str, Any], keys: tuple[str, ...], ignored: tuple[str, ...]) -> str:
    present = [k for k in keys if k in body]
    unknown = sorted(set(body) - set(keys) - set(ignored))
    if len(present) != 1 or unknown:
        expected = " or ".join(repr(k) for k in keys)
        got = ", ".join(repr(k) for k in sorted(body)) or "no keys"
        raise request_problem(
            f"The request body must hold exactly one of {expected}; got {got}.",
            expected=expected,
            received=got,
        )
    return present[0]


def parse_v1(body: Any, limit: int) -> Parsed:
    """modelkeep's ``/v1`` predict body."""
    body = _object(body, "request body")
    key = _one_key(body, ("instances", "dataframe_split"), ())
    parsed = (
        _records(body[key], key, limit) if key == "instances" else _split(body[key], key, limit)
    )
    scalars_only(parsed[0])
    return parsed


def parse_mlflow(body: Any, limit: int) -> Parsed:
    """An MLflow scoring request (``mlflow models serve``'s ``/invocations``)."""
    body = _object(body, "request body")
    keys = ("dataframe_split", "dataframe_records", "instances", "inputs")
    key = _one_key(body, keys, ("params",))
    value = body[key]
    if key == "dataframe_split":
        parsed = _split(value, key, limit)
    elif isinstance(value, dict):  # instances / inputs as a dict of columns
        parsed = _columns(value, key, limit)
    else:
        parsed = _records(value, key, limit)
    scalars_only(parsed[0])
    return parsed


_V2_TYPES = {
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
}


def _flatten(data: Any, where: str, name: str) -> list[Any]:
    """A tensor's values: a flat array (shape [rows]) or one of one-value arrays ([rows, 1])."""
    if not isinstance(data, list):
        raise request_problem(
            f"{where}.data: expected an array of values.",
            column=name,
            expected="array",
            received=_kind(data),
        )
    flat: list[Any] = []
    for item in data:
        if isinstance(item, list):
            if any(isinstance(value, (list, dict)) for value in item):
                raise request_problem(
                    f"{where}.data: nested deeper than a [rows, 1] tensor.",
                    column=name,
                    expected="[rows] or [rows, 1] values",
                    received="deeper arrays",
                )
            flat.extend(item)
        else:
            flat.append(item)
    return flat


def parse_v2(body: Any, limit: int) -> tuple[Any, int, str | None]:
    """An Open Inference Protocol v2 ``infer`` request: columns, rows and the request id."""
    body = _object(body, "request body")
    unknown = sorted(set(body) - {"id", "parameters", "inputs", "outputs"})
    if unknown:
        raise request_problem(
            f"request body: unexpected keys {unknown}.",
            expected="id, parameters, inputs, outputs",
            received=", ".join(unknown),
        )
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise request_problem(
            "id: expected a string.", expected="string", received=_kind(request_id)
        )
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        raise request_problem(
            "inputs: expected an array of tensors, one per feature column.",
            expected="array",
            received=_kind(inputs),
        )
    columns: dict[str, list[Any]] = {}
    rows: int | None = None
    for position, tensor in enumerate(inputs):
        where = f"inputs[{position}]"
        tensor = _object(tensor, where)
        name, shape, datatype = tensor.get("name"), tensor.get("shape"), tensor.get("datatype")
        if not isinstance(name, str):
            raise request_problem(
                f"{where}.name: expected a string.", expected="string", received=_kind(name)
            )
        if datatype not in _V2_TYPES:
            raise request_problem(
                f"{where}.datatype: expected one of {sorted(_V2_TYPES)}, got {datatype!r}.",
                column=name,
                expected="a v2 datatype",
                received=repr(datatype)[:100],
            )
        if (
            not isinstance(shape, list)
            or not 1 <= len(shape) <= 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
            or (len(shape) == 2 and shape[1] != 1)
        ):
            raise request_problem(
                f"{where}.shape: expected [rows] or [rows, 1], got {shape!r}.",
                column=name,
                expected="[rows] or [rows, 1]",
                received=repr(shape)[:100],
            )
        if name in columns:
            raise request_problem(
                f"{where}: input {name!r} given twice.",
                column=name,
                expected="each input once",
                received="twice",
            )
        _check_rows(shape[0], limit)
        data = _flatten(tensor.get("data"), where, name)
        if len(data) != shape[0]:
            raise request_problem(
                f"{where}.data: shape {shape} needs {shape[0]} values, got {len(data)}.",
                column=name,
                expected=f"{shape[0]} values",
                received=f"{len(data)} values",
            )
        if rows is not None and shape[0] != rows:
            raise request_problem(
                f"{where}: {shape[0]} rows, but the inputs before it have {rows}.",
                column=name,
                expected=f"{rows} rows",
                received=f"{shape[0]} rows",
            )
        rows = shape[0]
        columns[name] = data
    scalars_only(columns)
    return columns, rows or 0, request_id


def plain(value: Any) -> Any:
    """``value`` as JSON can hold it (numpy scalars as Python numbers)."""
    item: Callable[[], Any] | None = getattr(value, "item", None)
    return item() if item is not None else value

"""HTTP errors: every refusal is one JSON shape, built from fields, never parsed from text.

The body of every error response::

    {"error": "schema", "message": "...", "problems": [{"row": 0, "column": "tenure",
     "expected": "...", "received": "...", "message": "...", "kind": "..."}]}

``problems`` lists the :class:`~modelkeep.errors.InputProblem` records of a
:class:`~modelkeep.errors.SchemaError` (422); other errors have one problem or none.
"""

from __future__ import annotations

from typing import Any

from modelkeep.errors import InputProblem, SchemaError

__all__ = ["ERROR_SCHEMA", "HTTPProblem", "problem_body", "schema_problem"]


class HTTPProblem(Exception):
    """A request refused with ``status``; ``kind`` names the rule (``"schema"``,
    ``"malformed_json"``, ``"unsupported_media_type"``, ``"not_found"`` ...)."""

    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        problems: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.kind = kind
        self.message = message
        self.problems = problems or []
        self.headers = headers or {}
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        return problem_body(self.kind, self.message, self.problems)


def problem_body(kind: str, message: str, problems: list[dict[str, Any]]) -> dict[str, Any]:
    return {"error": kind, "message": message, "problems": problems}


def schema_problem(exc: SchemaError) -> HTTPProblem:
    """The 422 for a schema violation, from the error's :class:`InputProblem` records."""
    return HTTPProblem(422, "schema", str(exc), [p.to_dict() for p in exc.problems])


def request_problem(
    message: str,
    *,
    column: str | None = None,
    row: int | None = None,
    expected: str | None = None,
    received: str | None = None,
    kind: str = "invalid_request",
) -> HTTPProblem:
    """A 422 for a body that is JSON but not a request of the protocol (wrong shape)."""
    record = InputProblem(row, column, expected, received, message, kind)
    return HTTPProblem(422, "schema", message, [record.to_dict()])


_PROBLEM = {
    "type": "object",
    "properties": {
        "row": {"type": ["integer", "null"]},
        "column": {"type": ["string", "null"]},
        "expected": {"type": ["string", "null"]},
        "received": {"type": ["string", "null"]},
        "message": {"type": "string"},
        "kind": {"type": "string"},
    },
    "required": ["row", "column", "expected", "received", "message", "kind"],
}

# The JSON schema of every error body, as the OpenAPI document declares it.
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "problems": {"type": "array", "items": _PROBLEM},
    },
    "required": ["error", "message", "problems"],
}

"""Every refusal: its status code and its body (error, message, problems)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from serve.conftest import Server, post_json, records

PREDICT = "/v1/models/churn_lr/predict"


@pytest.fixture(scope="module")
def client(served: Server) -> Iterator[httpx.Client]:
    with served.client() as client:
        yield client


@pytest.fixture(scope="module")
def row(churn_data: tuple[pd.DataFrame, np.ndarray]) -> dict[str, Any]:
    frame, _ = churn_data
    return records(frame.dropna().head(1))[0]


def problem(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "message", "problems"}
    assert body["error"] == error
    return body


@pytest.mark.parametrize("path", [PREDICT, "/v1/models/churn_rf/predict"])
def test_a_value_of_the_wrong_type_is_a_422_naming_row_and_column(
    client: httpx.Client, row: dict[str, Any], path: str
) -> None:
    rows = [row, {**row, "age": "old"}]
    body = problem(post_json(client, path, {"instances": rows}), 422, "schema")
    [found] = body["problems"]
    assert (found["row"], found["column"], found["expected"]) == (1, "age", "integer")
    assert found["received"] == "'old' (str)"
    assert "Column 'age': row 1" in found["message"]


def test_a_missing_column_is_listed(client: httpx.Client, row: dict[str, Any]) -> None:
    rows = [{k: v for k, v in row.items() if k not in ("plan", "income")}]
    body = problem(post_json(client, PREDICT, {"instances": rows}), 422, "schema")
    assert sorted(p["column"] for p in body["problems"]) == ["income", "plan"]
    assert all(p["kind"] == "missing_columns" for p in body["problems"])


def test_strict_true_refuses_what_otherwise_warns(
    client: httpx.Client, row: dict[str, Any]
) -> None:
    rows = [{**row, "plan": "platinum"}]
    lenient = post_json(client, PREDICT, {"instances": rows})
    assert lenient.status_code == 200
    assert "platinum" in lenient.json()["warnings"][0]
    body = problem(post_json(client, PREDICT, {"instances": rows}, strict="true"), 422, "schema")
    assert body["problems"][0]["column"] == "plan"
    assert body["problems"][0]["kind"] == "unseen_categories"
    body = problem(post_json(client, PREDICT, {"instances": rows}, strict="maybe"), 422, "schema")
    assert body["problems"][0]["kind"] == "invalid_parameter"


@pytest.mark.parametrize(
    ("body", "received"),
    [
        ([1, 2], "array"),
        ({"instances": [1]}, "number"),
        ({"instances": [], "dataframe_split": {}}, "'dataframe_split', 'instances'"),
        ({"dataframe_split": {"columns": ["age"], "data": [[1, 2]]}}, "array of 2"),
        ({"rows": []}, "'rows'"),
    ],
    ids=["not-an-object", "row-not-an-object", "two-shapes", "ragged-row", "unknown-key"],
)
def test_a_body_of_the_wrong_shape_is_a_422(client: httpx.Client, body: Any, received: str) -> None:
    found = problem(post_json(client, PREDICT, body), 422, "schema")
    assert found["problems"][0]["received"] == received


def test_malformed_json_is_400(client: httpx.Client) -> None:
    response = client.post(
        PREDICT, content=b'{"instances": [', headers={"Content-Type": "application/json"}
    )
    assert "not valid JSON" in problem(response, 400, "malformed_json")["message"]


@pytest.mark.parametrize("content_type", ["text/csv", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_is_415(client: httpx.Client, content_type: str | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = client.post(
        "/invocations", content=b"age,income\n1,2\n", headers=headers, params={"model": "churn_lr"}
    )
    problem(response, 415, "unsupported_media_type")


def test_a_pickled_body_is_never_unpickled(client: httpx.Client, tmp_path: Any) -> None:
    import pickle

    marker = tmp_path / "ran"
    payload = pickle.dumps(type("X", (), {"__reduce__": lambda s: (open, (str(marker), "w"))})())
    for content_type in ("application/octet-stream", "application/python-pickle"):
        response = client.post(PREDICT, content=payload, headers={"Content-Type": content_type})
        problem(response, 415, "unsupported_media_type")
    response = client.post(PREDICT, content=payload, headers={"Content-Type": "application/json"})
    problem(response, 400, "malformed_json")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v1/models/nope/predict", "got 'nope'"),
        ("/v1/models/churn_lr/versions/7/predict", "serves version 1, not '7'"),
        ("/v2/models/nope/infer", "got 'nope'"),
    ],
)
def test_unknown_model_or_version_is_404(client: httpx.Client, path: str, message: str) -> None:
    body = problem(post_json(client, path, {"instances": []}), 404, "not_found")
    assert message in body["message"]


def test_invocations_with_two_models_needs_one_named(
    client: httpx.Client, row: dict[str, Any]
) -> None:
    body = problem(post_json(client, "/invocations", {"instances": [row]}), 404, "not_found")
    assert "?model=NAME" in body["message"]
    assert client.get("/v1/models/nope").status_code == 404
    assert client.get("/no/such/route").json()["error"] == "not_found"


def test_a_body_over_the_size_limit_is_413(client: httpx.Client, row: dict[str, Any]) -> None:
    big = json.dumps({"instances": [row] * 2000}).encode()
    assert len(big) > 100_000
    response = client.post(PREDICT, content=big, headers={"Content-Type": "application/json"})
    problem(response, 413, "body_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    response = client.post(PREDICT, content=chunks(), headers={"Content-Type": "application/json"})
    problem(response, 413, "body_too_large")


@pytest.mark.parametrize("path", [PREDICT, "/invocations"])
def test_more_rows_than_the_limit_is_413(
    client: httpx.Client, row: dict[str, Any], path: str
) -> None:
    over = post_json(client, path, {"instances": [row] * 51}, model="churn_lr")
    assert "at most 50" in problem(over, 413, "too_many_rows")["message"]
    assert post_json(client, path, {"instances": [row] * 50}, model="churn_lr").status_code == 200


def test_empty_instances_give_no_predictions(client: httpx.Client) -> None:
    response = post_json(client, PREDICT, {"instances": []})
    assert response.status_code == 200
    assert response.json()["predictions"] == []


@pytest.mark.parametrize("depth", [1, 900], ids=["array", "deeply-nested"])
def test_a_cell_holding_an_array_is_a_422(
    client: httpx.Client, row: dict[str, Any], depth: int
) -> None:
    nested = "[" * depth + "1" + "]" * depth
    record = json.dumps({**row, "age": 0}).replace('"age": 0', f'"age": {nested}')
    for path, body in (
        (PREDICT, f'{{"instances": [{record}]}}'),
        (
            "/v2/models/churn_lr/infer",
            '{"inputs": [{"name": "age", "shape": [1], "datatype": "INT64", '
            f'"data": [{{"a": {nested}}}]}}]}}',
        ),
    ):
        response = client.post(path, content=body, headers={"Content-Type": "application/json"})
        found = problem(response, 422, "schema")["problems"][0]
        assert found["row"] == 0
        assert found["column"] == "age"

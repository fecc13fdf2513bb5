"""Predictions through /v1, MLflow's /invocations and Open Inference v2 equal Model.predict."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import numpy as np
import pandas as pd
import pytest

import modelkeep
from serve.conftest import Server, post_json, records

ROWS = 12


@pytest.fixture(scope="module")
def rows(churn_data: tuple[pd.DataFrame, np.ndarray]) -> pd.DataFrame:
    frame, _ = churn_data
    # Rows with missing values included (income and visits hold NaN in this frame).
    missing = frame[frame.isna().any(axis=1)].head(4)
    return pd.concat([frame.head(ROWS - len(missing)), missing])


@pytest.fixture(scope="module")
def expected(bundles: dict[str, Path], rows: pd.DataFrame) -> dict[str, Any]:
    out = {}
    for key, name, fmt in (("lr", "churn_lr", "skops"), ("rf", "churn_rf", "onnx")):
        model = modelkeep.load(bundles[key], format=fmt)
        proba = model.predict_proba(rows)
        out[name] = (list(model.predict(rows)), np.asarray(proba, dtype=float))
    return out


@pytest.fixture(scope="module")
def client(served: Server) -> Iterator[httpx.Client]:
    with served.client() as client:
        yield client


MODELS = ["churn_lr", "churn_rf"]


@pytest.mark.parametrize("name", MODELS)
def test_v1_instances_equal_predict_and_predict_proba(
    client: httpx.Client, rows: pd.DataFrame, expected: dict[str, Any], name: str
) -> None:
    response = post_json(client, f"/v1/models/{name}/predict", {"instances": records(rows)})
    assert response.status_code == 200, response.text
    body = response.json()
    labels, proba = expected[name]
    assert [p["label"] for p in body["predictions"]] == labels
    got = np.array(
        [[p["probabilities"]["No Churn"], p["probabilities"]["Churn"]] for p in body["predictions"]]
    )
    np.testing.assert_allclose(got, proba, rtol=0, atol=1e-12)
    assert body["model"] == name
    assert body["version"] == "1"
    assert len(body["manifest_hash"]) == 64
    assert response.headers["X-Model-Version"] == "1"
    assert response.headers["X-Manifest-Hash"] == body["manifest_hash"]


@pytest.mark.parametrize("name", MODELS)
def test_v1_dataframe_split_and_the_version_route(
    client: httpx.Client, rows: pd.DataFrame, expected: dict[str, Any], name: str
) -> None:
    data = records(rows)
    columns = list(data[0])
    body = {
        "dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in data]}
    }
    response = post_json(client, f"/v1/models/{name}/versions/1/predict", body)
    assert response.status_code == 200, response.text
    assert [p["label"] for p in response.json()["predictions"]] == expected[name][0]


@pytest.mark.parametrize("shape", ["dataframe_split", "dataframe_records", "instances", "inputs"])
@pytest.mark.parametrize("name", MODELS)
def test_mlflow_invocations(
    client: httpx.Client, rows: pd.DataFrame, expected: dict[str, Any], name: str, shape: str
) -> None:
    data = records(rows)
    columns = list(data[0])
    bodies: dict[str, Any] = {
        "dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in data]},
        "dataframe_records": data,
        "instances": data,
        "inputs": {c: [r[c] for r in data] for c in columns},
    }
    response = post_json(client, "/invocations", {shape: bodies[shape]}, model=name)
    assert response.status_code == 200, response.text
    # The body is one of the shapes /invocations documents (the docs list them all).
    document = client.get("/openapi.json").json()
    request = document["paths"]["/invocations"]["post"]["requestBody"]
    schema = request["content"]["application/json"]["schema"]
    jsonschema.validate({shape: bodies[shape]}, {**schema, "components": document["components"]})
    assert response.json() == {"predictions": expected[name][0]}
    assert response.headers["X-Model-Name"] == name


@pytest.mark.parametrize("name", MODELS)
def test_open_inference_v2(
    client: httpx.Client, rows: pd.DataFrame, expected: dict[str, Any], name: str
) -> None:
    metadata = client.get(f"/v2/models/{name}").json()
    data = records(rows)
    inputs = [
        {
            "name": i["name"],
            "shape": [len(data)],
            "datatype": i["datatype"],
            "data": [r[i["name"]] for r in data],
        }
        for i in metadata["inputs"]
    ]
    response = post_json(client, f"/v2/models/{name}/infer", {"id": "req-7", "inputs": inputs})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"], body["id"]) == (name, "1", "req-7")
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["label"]["data"] == expected[name][0]
    assert outputs["probabilities"]["shape"] == [len(data), 2]
    proba = np.array(outputs["probabilities"]["data"]).reshape(len(data), 2)
    np.testing.assert_allclose(proba, expected[name][1], rtol=0, atol=1e-12)


def test_health_models_and_description(served: Server, client: httpx.Client) -> None:
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").json()["models"] == MODELS
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/churn_rf/ready").json() == {"name": "churn_rf", "ready": True}
    listed = client.get("/v1/models").json()["models"]
    assert [(m["name"], m["format"]) for m in listed] == [
        ("churn_lr", "skops"),
        ("churn_rf", "onnx"),
    ]
    described = client.get("/v1/models/churn_lr").json()
    assert described["metrics"] == {"f1": 0.7}
    assert described["labels"] == [[0, "No Churn"], [1, "Churn"]]
    assert [f["name"] for f in described["schema"]] == [
        "age",
        "income",
        "visits",
        "plan",
        "region",
        "autopay",
    ]
    assert "python_version" in described["environment"]
    assert client.get("/v1/models/churn_rf").json()["parity"]["passed"] is True


def test_metrics_count_requests_rows_labels_and_versions(
    client: httpx.Client, rows: pd.DataFrame
) -> None:
    post_json(client, "/v1/models/churn_lr/predict", {"instances": records(rows)})
    post_json(client, "/v1/models/nope/predict", {"instances": []})
    text = client.get("/metrics").text
    assert 'modelkeep_requests_total{endpoint="v1_predict",model="churn_lr",status="200"}' in text
    assert 'modelkeep_errors_total{endpoint="v1_predict",kind="not_found",model=""}' in text
    assert 'modelkeep_rows_predicted_total{model="churn_lr",version="1"}' in text
    assert 'modelkeep_predicted_labels_total{label="Churn",model="churn_lr"}' in text
    assert 'modelkeep_batch_rows_bucket{le="16.0",model="churn_lr"}' in text
    assert 'modelkeep_request_duration_seconds_bucket{endpoint="v1_predict"' in text
    assert 'modelkeep_model_info{format="onnx",manifest_hash="' in text


def test_concurrent_requests_are_batched_and_each_gets_its_own_rows(
    served: Server, rows: pd.DataFrame, expected: dict[str, Any]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    data = records(rows)
    labels = expected["churn_lr"][0]

    def one(i: int) -> tuple[int, list[str]]:
        with served.client() as client:
            response = post_json(client, "/v1/models/churn_lr/predict", {"instances": [data[i]]})
            return response.status_code, [p["label"] for p in response.json()["predictions"]]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, [i % len(data) for i in range(64)]))
    assert results == [(200, [labels[i % len(data)]]) for i in range(64)]


def test_the_manifest_hash_is_the_sha256_of_modelkeep_json(
    client: httpx.Client, bundles: dict[str, Path]
) -> None:
    import hashlib

    for key, name in (("lr", "churn_lr"), ("rf", "churn_rf")):
        digest = hashlib.sha256((bundles[key] / "modelkeep.json").read_bytes()).hexdigest()
        assert client.get(f"/v1/models/{name}").json()["manifest_hash"] == digest


def test_openapi_shows_each_models_exact_input(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    record = document["components"]["schemas"]["ChurnLrRecord"]
    properties = record["properties"]
    assert record["required"] == ["age", "income", "visits", "plan", "region", "autopay"]
    assert properties["age"]["type"] == "integer"
    assert properties["autopay"]["type"] == "boolean"
    assert properties["plan"]["enum"] == ["basic", "plus", "premium"]
    assert properties["region"]["enum"] == ["east", "north", "south"]
    assert {"type": "null"} in properties["income"]["anyOf"]  # nullable: it had NaN
    assert {"type": "number"} in properties["income"]["anyOf"]
    request = document["paths"]["/v1/models/churn_lr/predict"]["post"]["requestBody"]
    assert request["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ChurnLrPredictRequest"
    }
    infer = document["components"]["schemas"]["ChurnRfInferRequest"]
    names = [
        t["properties"]["name"]["const"] for t in infer["properties"]["inputs"]["items"]["oneOf"]
    ]
    assert names == ["age", "income", "visits", "plan", "region", "autopay"]
    assert client.get("/docs").status_code == 200

"""The OpenAPI document: each served model's exact input, generated from its feature schema.

Per model, a pydantic request model (``<Model>Record``) is built from the manifest's features:
names as written (aliases where a name is no identifier), types from the logical dtypes,
categories as enums, nullability as ``null``; the ``/v1`` predict request and response, the
``/invocations`` request and the v2 ``infer`` tensors refer to it. The document is rebuilt
when a swap changes what is served, so ``/docs`` always shows the models being served.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model

from modelkeep.manifest import FeatureSpec
from modelkeep.serve.errors import ERROR_SCHEMA
from modelkeep.serve.table import ServedModel

__all__ = ["build_openapi", "record_model", "v2_datatype"]

_REF = "#/components/schemas/{model}"


def _title(name: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", name)
    title = "".join(w[:1].upper() + w[1:] for w in words if w)
    return title if title and not title[0].isdigit() else f"Model{title}"


def _python_type(spec: FeatureSpec) -> Any:
    if spec.categories:
        return Literal[tuple(spec.categories)]
    return {
        "integer": int,
        "float": float,
        "boolean": bool,
        "string": str,
        "category": str,
        "datetime": datetime,
    }[spec.dtype]


def record_model(served: ServedModel) -> type[BaseModel]:
    """The pydantic model of one input row of ``served``: one field per feature."""
    fields: dict[str, Any] = {}
    for position, spec in enumerate(served.model.schema):
        kind = _python_type(spec)
        if spec.nullable:
            kind = Optional[kind]  # noqa: UP045 (a runtime type expression)
        fields[f"f{position}"] = (
            kind,
            Field(alias=spec.name, description=_describe(spec)),
        )
    model: type[BaseModel] = create_model(
        f"{_title(served.name)}Record",
        __config__=ConfigDict(extra="allow", populate_by_name=False),
        **fields,
    )
    return model


def _describe(spec: FeatureSpec) -> str:
    text = f"{spec.dtype}"
    if spec.min is not None and spec.max is not None:
        text += f"; seen in training: {spec.min} to {spec.max}"
    if spec.nullable:
        text += "; may be null (missing)"
    return text


def _label_schema(served: ServedModel) -> dict[str, Any]:
    labels = served.model.labels
    if labels is not None:
        return {"type": "string", "enum": sorted(set(labels.values()))}
    classes = served.model.manifest.target.classes
    if classes:
        return {"enum": list(classes)}
    return {"type": "number"}


def _components(served: ServedModel, schemas: dict[str, Any]) -> dict[str, str]:
    """Add ``served``'s request and response schemas; return their names by role."""
    title = _title(served.name)
    record = record_model(served)
    schema = record.model_json_schema(ref_template=_REF, by_alias=True)
    schemas.update(schema.pop("$defs", {}))
    schemas[record.__name__] = schema
    record_ref = {"$ref": _REF.format(model=record.__name__)}
    split = {
        "type": "object",
        "properties": {
            "columns": {
                "type": "array",
                "items": {"type": "string", "enum": [f.name for f in served.model.schema]},
            },
            "data": {"type": "array", "items": {"type": "array"}},
        },
        "required": ["columns", "data"],
    }
    schemas[f"{title}PredictRequest"] = {
        "title": f"{title}PredictRequest",
        "oneOf": [
            {
                "type": "object",
                "properties": {"instances": {"type": "array", "items": record_ref}},
                "required": ["instances"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {"dataframe_split": split},
                "required": ["dataframe_split"],
                "additionalProperties": False,
            },
        ],
    }
    label = _label_schema(served)
    if served.model.task == "regression":
        row = {
            "type": "object",
            "properties": {"value": {"type": "number"}},
            "required": ["value"],
        }
    else:
        row = {
            "type": "object",
            "properties": {
                "label": label,
                "probabilities": {
                    "type": ["object", "null"],
                    "additionalProperties": {"type": "number"},
                },
            },
            "required": ["label", "probabilities"],
        }
    schemas[f"{title}PredictResponse"] = {
        "title": f"{title}PredictResponse",
        "type": "object",
        "properties": {
            "model": {"type": "string"},
            "version": {"type": "string"},
            "manifest_hash": {"type": "string"},
            "request_id": {"type": "string"},
            "predictions": {"type": "array", "items": row},
            "warnings": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["model", "version", "manifest_hash", "request_id", "predictions", "warnings"],
    }
    tensors = []
    for spec in served.model.schema:
        value = record.model_json_schema(by_alias=True, ref_template=_REF)["properties"][spec.name]
        value.pop("description", None)
        value.pop("title", None)
        tensors.append(
            {
                "type": "object",
                "properties": {
                    "name": {"const": spec.name},
                    "shape": {
                        "type": "array",
                        "items": {"type": "integer", "minimum": 0},
                        "minItems": 1,
                        "maxItems": 1,
                    },
                    "datatype": {"type": "string", "enum": [v2_datatype(spec)]},
                    "data": {"type": "array", "items": value},
                    "parameters": {"type": "object"},
                },
                "required": ["name", "shape", "datatype", "data"],
            }
        )
    schemas[f"{title}InferRequest"] = {
        "title": f"{title}InferRequest",
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "items": {"oneOf": tensors}},
        },
        "required": ["inputs"],
        "additionalProperties": False,
    }
    return {
        "record": record.__name__,
        "request": f"{title}PredictRequest",
        "response": f"{title}PredictResponse",
        "infer": f"{title}InferRequest",
    }


def v2_datatype(spec: FeatureSpec) -> str:
    """The Open Inference Protocol datatype of a feature's tensor."""
    if spec.dtype == "integer":
        return "INT64"
    if spec.dtype == "float":
        return "FP64"
    if spec.dtype == "boolean":
        return "BOOL"
    return "BYTES"


def _json(schema: dict[str, Any] | str) -> dict[str, Any]:
    if isinstance(schema, str):
        schema = {"$ref": _REF.format(model=schema)}
    return {"application/json": {"schema": schema}}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "Malformed JSON",
        401: "Missing or wrong API key",
        404: "Unknown model or version",
        413: "Body or row count over the limit",
        415: "Not JSON",
        422: "Input that does not fit the model's schema (problems lists each)",
        503: "Not ready, or draining before shutdown",
    }
    return {str(s): {"description": reasons[s], "content": _json("Error")} for s in statuses}


_INFER_RESPONSE = {
    "title": "InferResponse",
    "type": "object",
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "shape": {"type": "array", "items": {"type": "integer"}},
                    "datatype": {"type": "string"},
                    "data": {"type": "array"},
                },
                "required": ["name", "shape", "datatype", "data"],
            },
        },
    },
    "required": ["model_name", "model_version", "id", "outputs"],
}

_TEXT = {"text/plain": {"schema": {"type": "string"}}}


def build_openapi(
    models: list[ServedModel], *, secured: bool, admin: bool, version: str
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a server serving ``models``."""
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA, "InferResponse": _INFER_RESPONSE}
    paths: dict[str, Any] = {}
    security: list[dict[str, list[str]]] = [{"bearer": []}] if secured else []
    auth_errors = (401,) if secured else ()
    strict = {
        "name": "strict",
        "in": "query",
        "required": False,
        "schema": {"type": "boolean", "default": False},
        "description": "Refuse unknown columns, unseen categories, values outside the "
        "training range and unexpected missing values (Model.predict(strict=True)).",
    }

    def health(summary: str) -> dict[str, Any]:
        return {
            "get": {
                "summary": summary,
                "responses": {
                    "200": {"description": "OK", "content": _json({"type": "object"})},
                    **_errors(503),
                },
            }
        }

    paths["/livez"] = health("The process is alive")
    paths["/readyz"] = health("Every model is loaded and verified")
    paths["/v2/health/live"] = health("Open Inference Protocol: live")
    paths["/v2/health/ready"] = health("Open Inference Protocol: ready")
    paths["/metrics"] = {
        "get": {
            "summary": "Prometheus metrics",
            "responses": {"200": {"description": "OK", "content": _TEXT}},
        }
    }
    paths["/v1/models"] = {
        "get": {
            "summary": "The served models",
            "security": security,
            "responses": {
                "200": {"description": "OK", "content": _json({"type": "object"})},
                **_errors(*auth_errors),
            },
        }
    }
    names = [m.name for m in models]
    for served in models:
        parts = _components(served, schemas)
        name = served.name
        predict = {
            "post": {
                "summary": f"Predict with {name} (the version being served)",
                "security": security,
                "parameters": [strict],
                "requestBody": {"required": True, "content": _json(parts["request"])},
                "responses": {
                    "200": {"description": "Predictions", "content": _json(parts["response"])},
                    **_errors(*auth_errors, 400, 404, 413, 415, 422, 503),
                },
            }
        }
        paths[f"/v1/models/{name}"] = {
            "get": {
                "summary": f"{name}: schema, labels, metrics, parity, version, environment",
                "security": security,
                "responses": {
                    "200": {"description": "OK", "content": _json({"type": "object"})},
                    **_errors(*auth_errors, 404),
                },
            }
        }
        paths[f"/v1/models/{name}/predict"] = predict
        paths[f"/v1/models/{name}/versions/{served.version}/predict"] = predict
        paths[f"/v2/models/{name}"] = {
            "get": {
                "summary": f"Open Inference Protocol: {name}'s metadata",
                "security": security,
                "responses": {
                    "200": {"description": "OK", "content": _json({"type": "object"})},
                    **_errors(*auth_errors, 404),
                },
            }
        }
        paths[f"/v2/models/{name}/ready"] = health(f"Open Inference Protocol: {name} is ready")
        paths[f"/v2/models/{name}/infer"] = {
            "post": {
                "summary": f"Open Inference Protocol: infer with {name}",
                "security": security,
                "requestBody": {"required": True, "content": _json(parts["infer"])},
                "responses": {
                    "200": {"description": "Outputs", "content": _json("InferResponse")},
                    **_errors(*auth_errors, 400, 404, 413, 415, 422, 503),
                },
            }
        }
    record_refs = [{"$ref": _REF.format(model=f"{_title(m.name)}Record")} for m in models]
    record: dict[str, Any] = record_refs[0] if len(record_refs) == 1 else {"type": "object"}
    column_names: dict[str, Any] = {"type": "string"}
    if len(models) == 1:
        column_names["enum"] = [f.name for f in models[0].model.schema]
    # Every shape parse_mlflow takes: records, a dict of columns, or columns and rows.
    mlflow_shapes: list[dict[str, Any]] = [
        _mlflow_shape(key, {"type": "array", "items": record})
        for key in ("dataframe_records", "instances", "inputs")
    ]
    mlflow_shapes += [
        _mlflow_shape(
            key,
            {
                "type": "object",
                "propertyNames": column_names,
                "additionalProperties": {"type": "array"},
                "minProperties": 1,
            },
        )
        for key in ("instances", "inputs")
    ]
    mlflow_shapes.append(
        _mlflow_shape(
            "dataframe_split",
            {
                "type": "object",
                "properties": {
                    "columns": {"type": "array", "items": column_names},
                    "data": {"type": "array", "items": {"type": "array"}},
                },
                "required": ["columns", "data"],
            },
        )
    )
    paths["/invocations"] = {
        "post": {
            "summary": "MLflow's scoring protocol (as `mlflow models serve`)",
            "security": security,
            "parameters": [
                {
                    "name": "model",
                    "in": "query",
                    "required": len(models) > 1,
                    "schema": {"type": "string", "enum": names},
                }
            ],
            "requestBody": {
                "required": True,
                "content": _json({"anyOf": mlflow_shapes}),
            },
            "responses": {
                "200": {
                    "description": "Predictions",
                    "content": _json(
                        {
                            "type": "object",
                            "properties": {"predictions": {"type": "array"}},
                            "required": ["predictions"],
                        }
                    ),
                },
                **_errors(*auth_errors, 400, 404, 413, 415, 422, 503),
            },
        }
    }
    if admin:
        paths["/admin/reload"] = {
            "post": {
                "summary": "Check every followed alias now and swap to verified new versions",
                "security": [{"bearer": []}],
                "responses": {
                    "200": {"description": "Swap events", "content": _json({"type": "object"})},
                    **_errors(401),
                },
            }
        }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "modelkeep prediction service", "version": version},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if secured or admin:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return document


def _mlflow_shape(key: str, value: dict[str, Any]) -> dict[str, Any]:
    """One body shape of ``/invocations``: ``{key: value}``, with optional ``params``."""
    return {
        "type": "object",
        "properties": {key: value, "params": {"type": "object"}},
        "required": [key],
        "additionalProperties": False,
    }

"""The OpenAPI document: every status each operation returns, and ONE error shape per protocol.

FastAPI generates the operations from the routes but knows only 200 and its own 422. This module
completes the generated document once, from facts of each operation: its protocol (the path, as
in :func:`mlops_serving.app.error_body`), whether it is authenticated (its ``security``), whether
it names a model (``{name}``, whose values are the served models) and whether it runs a
prediction (POST). Generated clients and fuzzers rely on it; ``tests/serving/test_openapi.py``
checks it against real answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

NATIVE_ERROR = "Error"
MLFLOW_ERROR = "MlflowError"
V2_ERROR = "V2Error"

ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    NATIVE_ERROR: {
        "type": "object",
        "description": "Error of the platform's JSON protocol (and of every path outside /invocations and /v2).",
        "required": ["error", "request_id"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "examples": ["INVALID_INPUT"]},
                    "message": {"type": "string"},
                    "field": {"type": ["string", "null"], "description": "The offending field, when there is one."},
                },
            },
            "request_id": {"type": "string"},
        },
    },
    MLFLOW_ERROR: {
        "type": "object",
        "description": "Error of MLflow's scoring protocol.",
        "required": ["error_code", "message", "request_id"],
        "properties": {
            "error_code": {"type": "string"}, "message": {"type": "string"}, "request_id": {"type": "string"},
        },
    },
    V2_ERROR: {
        "type": "object",
        "description": "Error of the Open Inference Protocol v2.",
        "required": ["error", "request_id"],
        "properties": {"error": {"type": "string"}, "request_id": {"type": "string"}},
    },
}

_DESCRIPTIONS = {
    "400": "Malformed body: not JSON/CSV, a missing top-level key, or not exactly one of `features`/`instances`",
    "401": "Missing or unknown API key",
    "403": "The API key is not allowed for this model",
    "404": "No such model or version served here",
    "408": "The body did not arrive within MLOPS_SERVING_BODY_TIMEOUT_S (the connection is closed)",
    "413": "Body or row count over the limits (MLOPS_SERVING_MAX_BODY_BYTES, MLOPS_SERVING_MAX_ROWS)",
    "415": "Unsupported content type",
    "422": "Input not valid for the model's signature (names, count, types, NaN/Infinity)",
    "500": "The model failed on this input (the message carries the request id)",
    "503": "The model is not loaded yet, a body-parsing process died (both with Retry-After), or the server is "
           "shutting down",
    "504": "The prediction did not finish within MLOPS_SERVING_REQUEST_TIMEOUT_S",
}


def error_schema_of(path: str) -> str:
    """The error shape of ``path``'s protocol (the one :func:`mlops_serving.app.error_body` writes)."""
    if path == "/invocations":
        return MLFLOW_ERROR
    if path.startswith("/v2"):
        return V2_ERROR
    return NATIVE_ERROR


def statuses(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    """The error statuses an operation can answer, besides its success."""
    codes: list[str] = []
    if method == "post":
        codes += ["400", "408", "413", "415", "422", "500", "504"]
    if operation.get("security"):
        codes += ["401", "403"]
    if "{name}" in path or method == "post":
        codes += ["404"]
    if method == "post" or "{name}" in path or path.endswith(("/ready", "/readyz", "/ping", "/health")):
        codes += ["503"]
    return sorted(set(codes))


def complete(schema: dict[str, Any], models: Sequence[str]) -> dict[str, Any]:
    """Add the error schemas and every operation's error responses to a generated document, and
    the served ``models`` as the values of the ``{name}`` path parameter."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(ERROR_SCHEMAS)
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 shape is never sent
        components.pop(name, None)
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter.get("name") == "name":
                    parameter["schema"] = {**parameter.get("schema", {}), "enum": list(models)}
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            ref = {"$ref": f"#/components/schemas/{error_schema_of(path)}"}
            for code in statuses(path, method, operation):
                body = {"application/json": {"schema": ref}}
                if code == "503" and method == "get" and not operation.get("security"):
                    # readiness probes answer 503 in their own success shape, with the reasons
                    body = {"application/json": {"schema": {"type": "object"}}}
                responses[code] = {"description": _DESCRIPTIONS[code], "content": body}
    return schema

"""The OpenAPI document against the answers of the real server: every status a test observes is
documented for its operation, and every error body validates against the documented schema (one
error shape per protocol, also for paths no route matches)."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
import requests
from support.serving import CANCER, WINE, WINE_ROWS, Keys, Server


def _operation(doc: dict[str, Any], method: str, path: str) -> tuple[str, dict[str, Any]]:
    for template, item in doc["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method in item:
            return template, item[method]
    raise AssertionError(f"{method.upper()} {path} is not in the OpenAPI document")


def _check(doc: dict[str, Any], method: str, path: str, response: requests.Response) -> None:
    template, operation = _operation(doc, method, path)
    status = str(response.status_code)
    assert status in operation["responses"], f"{method.upper()} {template} answered {status}, not documented"
    content = operation["responses"][status].get("content", {}).get("application/json")
    if content is not None and "schema" in content:
        schema = {**content["schema"], "components": doc["components"]}
        jsonschema.validate(response.json(), schema, cls=jsonschema.Draft202012Validator)


def test_openapi_describes_every_observed_answer(server: Server, keys: Keys) -> None:
    doc = server.get("/openapi.json", key=False).json()
    wine = f"/models/{WINE}/predict"
    rows = WINE_ROWS
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("post", wine, {"json": {"features": rows}}, 200),
        ("post", wine, {"json": {"features": rows, "instances": [{"x": 1.0}]}}, 400),
        ("post", wine, {"data": b"{not json", "headers": {"content-type": "application/json"}}, 400),
        ("post", wine, {"json": {"features": rows}, "key": False}, 401),
        ("post", wine, {"json": {"features": rows}, "key": keys.cancer_only}, 403),
        ("post", "/models/no-such-model/predict", {"json": {"features": rows}}, 404),
        ("post", wine, {"data": b"x", "headers": {"content-type": "text/plain"}}, 415),
        ("post", wine, {"json": {"features": [[1.0, 2.0]]}}, 422),
        ("post", "/invocations", {"json": {"inputs": [[1.0, 2.0]]}}, 422),
        ("post", "/invocations", {"json": {"inputs": [[1.0, 2.0]]}, "key": False}, 401),
        ("post", f"/v2/models/{WINE}/infer", {"json": {"inputs": [{"name": "x", "shape": [1, 2],
                                                                    "datatype": "FP64", "data": [1, 2]}]}}, 422),
        ("post", "/v2/models/no-such-model/infer", {"json": {"inputs": []}}, 404),
        ("get", f"/v2/models/{WINE}", {}, 200),
        ("get", f"/v2/models/{WINE}", {"key": keys.cancer_only}, 403),
        ("get", f"/v2/models/{WINE}/versions/999", {}, 404),
        ("get", f"/v2/models/{CANCER}/ready", {}, 200),
        ("get", "/readyz", {"key": False}, 200),
    ]
    for method, path, kwargs, expected in cases:
        response = server.request(method.upper(), path, **kwargs)
        assert response.status_code == expected, (method, path, response.status_code, response.text)
        _check(doc, method, path, response)

    # the request body says "exactly one of features / instances"
    body = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    validator = jsonschema.Draft202012Validator(body)
    assert validator.is_valid({"features": rows}) and validator.is_valid({"instances": [{"a": 1.0}]})
    assert not validator.is_valid({"features": rows, "instances": [{"a": 1.0}]}) and not validator.is_valid({})


@pytest.mark.parametrize(("path", "schema"), [("/no-such-path", "Error"), ("/v2/no-such-path", "V2Error")])
def test_unknown_paths_answer_in_the_protocols_error_shape(server: Server, path: str, schema: str) -> None:
    doc = server.get("/openapi.json", key=False).json()
    response = server.get(path)
    assert response.status_code == 404
    jsonschema.validate(response.json(), {"$ref": f"#/components/schemas/{schema}", "components": doc["components"]},
                        cls=jsonschema.Draft202012Validator)

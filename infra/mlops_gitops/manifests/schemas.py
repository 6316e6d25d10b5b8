"""Strict schema validation: kubernetes-validate for core kinds, kubeconform-layout CRD schemas.

Strictness: core kinds use kubernetes-validate's ``strict`` schemas (``additionalProperties:
false`` throughout). CRD schemas are tightened on load: every object schema that lists
``properties`` and neither sets ``additionalProperties`` nor preserves unknown fields gets
``additionalProperties: false`` (not inside ``oneOf``/``anyOf``/``allOf``/``not`` branches, whose
parent already lists the properties), so a schema folder generated without strictness is made
strict here. A kind without a schema is a problem, not a pass.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]

from mlops_gitops.manifests.model import Obj, Problem

_BRANCHES = ("oneOf", "anyOf", "allOf", "not")


def tighten(schema: Any, in_branch: bool = False) -> Any:
    """Return ``schema`` with ``additionalProperties: false`` wherever properties are listed."""
    if isinstance(schema, list):
        return [tighten(item, in_branch) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties", "definitions", "$defs") and isinstance(value, dict):
            out[key] = {name: tighten(sub) for name, sub in value.items()}
        elif key in _BRANCHES:
            out[key] = tighten(value, in_branch=True)
        elif key in ("items", "additionalProperties") and isinstance(value, dict | list):
            out[key] = tighten(value)
        else:
            out[key] = value
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
        and not in_branch
    ):
        out["additionalProperties"] = False
    return out


class SchemaValidator:
    """Validates objects against the schema of their kind."""

    def __init__(self, crd_schemas: Path | None, kubernetes_version: str) -> None:
        self.crd_schemas = crd_schemas
        self.kubernetes_version = kubernetes_version

    @cache  # noqa: B019 - one validator per run, schemas are reused per kind
    def _crd_validator(self, group: str, kind: str, version: str) -> jsonschema.protocols.Validator | None:
        if self.crd_schemas is None:
            return None
        path = self.crd_schemas / group / f"{kind.lower()}_{version}.json"
        if not path.is_file():
            return None
        schema = tighten(json.loads(path.read_text(encoding="utf-8")))
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
        validator: jsonschema.protocols.Validator = cls(schema)
        return validator

    def validate(self, obj: Obj) -> list[Problem]:
        if not obj.kind or not obj.version:
            return [Problem.at(obj, "apiVersion and kind are required")]
        crd = self._crd_validator(obj.group, obj.kind, obj.version) if obj.group else None
        if crd is not None:
            errors = sorted(crd.iter_errors(obj.body), key=lambda e: list(e.absolute_path))
            return [Problem.at(obj, f"schema: {_where(e)}{_short(e.message)}") for e in errors]
        try:
            kubernetes_validate.validate(obj.body, self.kubernetes_version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            where = f"{self.crd_schemas}" if self.crd_schemas else "MLOPS_CRD_SCHEMAS (not set)"
            return [Problem.at(
                obj, f"no schema for {obj.api_version} {obj.kind}: neither kubernetes-validate "
                f"{self.kubernetes_version} nor {where} has one",
            )]
        except kubernetes_validate.ValidationError as exc:
            return [Problem.at(obj, f"schema: {_where(exc)}{_short(exc.message)}")]
        return []


def _where(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    return f"{path}: " if path else ""


def _short(message: str, limit: int = 240) -> str:
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 3] + "..."

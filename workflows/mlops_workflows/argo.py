"""Argo Workflows through the Argo Server API (the ``argo-workflows`` SDK): submit a template, read a workflow.

Settings (``MLOPS_ARGO_*``), read once by the command that needs them:

- ``MLOPS_ARGO_SERVER_URL``: the Argo Server, e.g. ``http://127.0.0.1:2746`` after
  ``kubectl -n argo port-forward svc/argo-workflows-server 2746``, or
  ``http://argo-workflows-server.argo.svc.cluster.local:2746`` inside the cluster;
- ``MLOPS_ARGO_NAMESPACE``: namespace of the workflows (default ``mlops``);
- ``ARGO_TOKEN``: the bearer token (``Bearer <token>`` or the bare token), as the ``argo`` CLI
  takes it; or ``MLOPS_ARGO_TOKEN_FILE``: a file holding it (a pod's ServiceAccount token).

The Argo Server runs in ``client`` auth mode, so it acts with the token's Kubernetes
permissions: a workflow pod's ServiceAccount may submit only what its Role allows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlops_platform.errors import ConfigError, InvalidInputError, NotFoundError, ServiceUnavailableError
from mlops_platform.settings import check_http_url

ENV_PREFIX_ARGO = "MLOPS_ARGO_"


class ArgoSettings(BaseSettings):
    """Where the Argo Server is and how to authenticate to it."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX_ARGO, extra="ignore", env_ignore_empty=True, populate_by_name=True
    )

    server_url: str | None = Field(
        None,
        validation_alias=AliasChoices("MLOPS_ARGO_SERVER_URL"),
        description="Base URL of the Argo Server (http or https).",
    )
    namespace: str = Field(
        "mlops", validation_alias=AliasChoices("MLOPS_ARGO_NAMESPACE"), description="Namespace of the workflows."
    )
    token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("ARGO_TOKEN", "MLOPS_ARGO_TOKEN"),
        description="Bearer token for the Argo Server ('Bearer <token>' or the bare token).",
    )
    token_file: Path | None = Field(
        None,
        validation_alias=AliasChoices("MLOPS_ARGO_TOKEN_FILE"),
        description="File holding the bearer token (used when ARGO_TOKEN is unset).",
    )
    timeout_s: float = Field(
        30.0, gt=0, validation_alias=AliasChoices("MLOPS_ARGO_TIMEOUT_S"), description="Timeout of one API call."
    )
    verify_tls: bool = Field(
        True, validation_alias=AliasChoices("MLOPS_ARGO_VERIFY_TLS"), description="Verify the server's certificate."
    )

    @field_validator("server_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        checked = check_http_url(value)
        return checked.rstrip("/") if checked else checked

    def authorization(self) -> str | None:
        """The Authorization header value, or None when no token is configured."""
        raw: str | None = None
        if self.token is not None and self.token.get_secret_value().strip():
            raw = self.token.get_secret_value().strip()
        elif self.token_file is not None:
            try:
                raw = self.token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"MLOPS_ARGO_TOKEN_FILE {self.token_file}: cannot read ({exc.strerror})") from exc
        if not raw:
            return None
        return raw if raw.lower().startswith("bearer ") else f"Bearer {raw}"


@dataclass(frozen=True)
class SubmitRequest:
    """A submission of a WorkflowTemplate: its parameters (``key=value``) and extra labels."""

    template: str
    parameters: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    generate_name: str | None = None


def parse_pairs(pairs: list[str], what: str) -> tuple[str, ...]:
    """Check ``key=value`` arguments (value may be empty, key may not)."""
    for pair in pairs:
        key, sep, _ = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"{what} {pair!r}: expected KEY=VALUE")
    return tuple(pairs)


class ArgoClient:
    """The two calls the CLI needs, over the SDK's generated client."""

    def __init__(self, settings: ArgoSettings) -> None:
        if not settings.server_url:
            raise ConfigError("MLOPS_ARGO_SERVER_URL is not set: the Argo Server's URL, e.g. http://127.0.0.1:2746")
        from argo_workflows.api_client import ApiClient
        from argo_workflows.configuration import Configuration

        self.settings = settings
        configuration = Configuration(host=settings.server_url)
        configuration.verify_ssl = settings.verify_tls
        authorization = settings.authorization()
        self._api_client = ApiClient(configuration)
        if authorization:
            self._api_client.set_default_header("Authorization", authorization)

    def close(self) -> None:
        self._api_client.close()

    def __enter__(self) -> ArgoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _workflows(self) -> Any:
        from argo_workflows.api.workflow_service_api import WorkflowServiceApi

        return WorkflowServiceApi(self._api_client)

    def submit(self, request: SubmitRequest) -> dict[str, Any]:
        """POST /api/v1/workflows/{namespace}/submit; returns the created Workflow as a dict."""
        from argo_workflows.model.io_argoproj_workflow_v1alpha1_submit_opts import (
            IoArgoprojWorkflowV1alpha1SubmitOpts,
        )
        from argo_workflows.model.io_argoproj_workflow_v1alpha1_workflow_submit_request import (
            IoArgoprojWorkflowV1alpha1WorkflowSubmitRequest,
        )

        options: dict[str, Any] = {}
        if request.parameters:
            options["parameters"] = list(request.parameters)
        if request.labels:
            options["labels"] = ",".join(request.labels)
        if request.generate_name:
            options["generate_name"] = request.generate_name
        body = IoArgoprojWorkflowV1alpha1WorkflowSubmitRequest(
            namespace=self.settings.namespace,
            resource_kind="WorkflowTemplate",
            resource_name=request.template,
            submit_options=IoArgoprojWorkflowV1alpha1SubmitOpts(**options),
        )
        return self._call(
            f"submit {request.template}",
            lambda api: api.submit_workflow(self.settings.namespace, body, **self._call_options()),
        )

    def get(self, name: str) -> dict[str, Any]:
        """GET /api/v1/workflows/{namespace}/{name}; returns the Workflow as a dict."""
        return self._call(
            f"workflow {name}", lambda api: api.get_workflow(self.settings.namespace, name, **self._call_options())
        )

    def _call_options(self) -> dict[str, Any]:
        # The raw response is decoded here: the generated models reject fields newer servers add.
        return {"_preload_content": False, "_request_timeout": self.settings.timeout_s}

    def _call(self, what: str, call: Any) -> dict[str, Any]:
        from argo_workflows.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        where = f"{self.settings.server_url} (namespace {self.settings.namespace})"
        try:
            response = call(self._workflows())
        except ApiException as exc:
            message = _server_message(exc.body) or exc.reason or ""
            if exc.status in (401, 403):
                raise ConfigError(
                    f"{what}: the Argo Server at {where} refused the token (HTTP {exc.status}: {message}); "
                    "set ARGO_TOKEN to a token allowed to use this namespace"
                ) from exc
            if exc.status == 404:
                raise NotFoundError(f"{what}: not found on the Argo Server at {where}: {message}") from exc
            if exc.status in (400, 409, 422):
                raise InvalidInputError(f"{what}: rejected by the Argo Server (HTTP {exc.status}): {message}") from exc
            raise ServiceUnavailableError(
                f"{what}: Argo Server at {where} answered HTTP {exc.status}: {message}"
            ) from exc
        except (HTTPError, OSError) as exc:
            raise ServiceUnavailableError(f"{what}: Argo Server at {where} unreachable: {exc}") from exc
        try:
            data = json.loads(response.data or b"{}")
        except ValueError as exc:
            raise ServiceUnavailableError(f"{what}: Argo Server at {where} sent a response that is not JSON") from exc
        if not isinstance(data, dict):
            raise ServiceUnavailableError(f"{what}: unexpected response from the Argo Server at {where}")
        return data


def _server_message(body: Any) -> str:
    if not body:
        return ""
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return str(body)[:300]
    return str(data.get("message", "")) if isinstance(data, dict) else ""


def describe(workflow: dict[str, Any]) -> str:
    """A human-readable status of a workflow: phase, times, progress, message and its steps."""
    meta = workflow.get("metadata") or {}
    status = workflow.get("status") or {}
    lines = [
        f"Name:       {meta.get('name', '?')}",
        f"Namespace:  {meta.get('namespace', '?')}",
        f"Phase:      {status.get('phase') or 'Pending'}",
    ]
    for key, label in (("startedAt", "Started"), ("finishedAt", "Finished"), ("progress", "Progress"),
                       ("message", "Message")):
        if status.get(key):
            lines.append(f"{label + ':':<11} {status[key]}")
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k.startswith("mlops.io/")}
    if labels:
        lines.append("Labels:     " + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())))
    nodes = [n for n in (status.get("nodes") or {}).values() if n.get("type") in ("Pod", "Retry", "Skipped")]
    if nodes:
        lines.append("")
        lines.append(f"{'STEP':<40} {'PHASE':<10} {'EXIT':<5} MESSAGE")
        for node in sorted(nodes, key=lambda n: (str(n.get("startedAt") or ""), str(n.get("displayName")))):
            if node.get("type") == "Retry":
                continue
            exit_code = str((node.get("outputs") or {}).get("exitCode", ""))
            lines.append(f"{str(node.get('displayName', node.get('name', '?')))[:40]:<40} "
                         f"{node.get('phase', '')!s:<10} {exit_code:<5} {node.get('message', '')}")
    return "\n".join(lines)

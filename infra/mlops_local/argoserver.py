"""The Argo Server API of the local Argo Workflows stand-in: what ``mlops workflow submit|status`` calls.

- ``POST /api/v1/workflows/{namespace}/submit`` (``resourceKind`` WorkflowTemplate or CronWorkflow,
  ``resourceName``, ``submitOptions.parameters`` as ``key=value``, ``labels``, ``entryPoint``): the
  workflow starts at once in :class:`mlops_local.workflows.LocalArgo` and the created Workflow is
  returned, as the Argo Server does;
- ``GET /api/v1/workflows/{namespace}/{name}``: the Workflow with its status and nodes.

The server runs in Argo's ``client`` auth mode: the bearer token must be one the stand-in gave a
ServiceAccount of the rendered objects (the pods' ``/var/run/secrets/kubernetes.io/serviceaccount/token``),
and that ServiceAccount must be allowed the call by the rendered Roles and RoleBindings (``create``
on ``workflows`` and ``get`` on the template for a submission, ``get`` on ``workflows`` to read
one); otherwise 401 or 403 with Kubernetes' wording. The namespace is the one the templates render in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

from mlops_local.httpd import serve_http
from mlops_local.podspec import Rendered
from mlops_local.workflows import LocalArgo
from mlops_platform.errors import ConfigError, InvalidInputError

__all__ = ["allowed", "serve_argo"]


def allowed(rendered: Rendered, account: str, namespace: str, verb: str, resource: str, name: str = "") -> bool:
    """Whether ServiceAccount ``account`` may ``verb`` ``resource`` (group argoproj.io) named ``name``
    in ``namespace``, by the rendered Roles and RoleBindings."""
    roles = {r["metadata"]["name"]: r for r in rendered.of_kind("Role")
             if r["metadata"].get("namespace", namespace) == namespace}
    for binding in rendered.of_kind("RoleBinding"):
        if binding["metadata"].get("namespace", namespace) != namespace:
            continue
        subjects = binding.get("subjects") or []
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == account
                   and s.get("namespace", namespace) == namespace for s in subjects):
            continue
        role = roles.get(binding["roleRef"]["name"]) if binding["roleRef"].get("kind") == "Role" else None
        for rule in (role or {}).get("rules", []):
            if ("argoproj.io" in rule.get("apiGroups", []) and resource in rule.get("resources", [])
                    and (verb in rule.get("verbs", []) or "*" in rule.get("verbs", []))
                    and (not rule.get("resourceNames") or name in rule["resourceNames"])):
                return True
    return False


def _answer(argo: LocalArgo, method: str, path: str, body: Mapping[str, Any] | None, authorization: str
            ) -> tuple[int, dict[str, Any]]:
    parts = path.strip("/").split("/")
    if parts[:3] != ["api", "v1", "workflows"] or len(parts) != 5:
        return 404, {"code": 5, "message": f"no route {method} {path}"}
    namespace = parts[3]
    token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
    accounts = [sa for sa, known in argo.tokens.items() if token and known == token]
    if not accounts:
        return 401, {"code": 16, "message": "Unauthorized"}
    account = accounts[0]
    who = f'"system:serviceaccount:{namespace}:{account}"'
    if method == "GET":
        if not allowed(argo.rendered, account, namespace, "get", "workflows"):
            return 403, {"code": 7, "message": f'workflows.argoproj.io is forbidden: User {who} cannot get resource '
                                               f'"workflows" in API group "argoproj.io" in the namespace "{namespace}"'}
        found = argo.find(lambda w: w.name == parts[4] and w.namespace == namespace)
        if not found:
            return 404, {"code": 5, "message": f'workflows.argoproj.io "{parts[4]}" not found'}
        return 200, found[0].api()
    if method != "POST" or parts[4] != "submit" or body is None:
        return 404, {"code": 5, "message": f"no route {method} {path}"}
    kind, name = str(body.get("resourceKind", "")), str(body.get("resourceName", ""))
    resource = {"WorkflowTemplate": "workflowtemplates", "CronWorkflow": "cronworkflows"}.get(kind)
    if resource is None:
        return 400, {"code": 3, "message": f"resourceKind {kind!r}: this server submits WorkflowTemplate or "
                                           "CronWorkflow"}
    for verb, res, res_name in (("get", resource, name), ("create", "workflows", "")):
        if not allowed(argo.rendered, account, namespace, verb, res, res_name):
            return 403, {"code": 7, "message": f'{res}.argoproj.io "{res_name}" is forbidden: User {who} cannot '
                                               f'{verb} resource "{res}" in API group "argoproj.io" in the '
                                               f'namespace "{namespace}"'}
    options = body.get("submitOptions") or {}
    parameters: dict[str, str] = {}
    for pair in options.get("parameters") or []:
        key, sep, value = str(pair).partition("=")
        if not sep:
            return 400, {"code": 3, "message": f"parameter {pair!r}: expected key=value"}
        parameters[key] = value
    labels = dict(item.split("=", 1) for item in str(options.get("labels") or "").split(",") if "=" in item)
    try:
        workflow = argo.submit(name if kind == "WorkflowTemplate" else "", parameters,
                               cron=name if kind == "CronWorkflow" else None,
                               entrypoint=options.get("entryPoint") or None,
                               submitted_by=f"Argo Server API as ServiceAccount {account}", labels=labels, wait=False)
    except (ConfigError, InvalidInputError) as exc:
        return 400, {"code": 3, "message": str(exc)}
    if workflow.namespace != namespace:
        return 404, {"code": 5, "message": f"{kind} {name} is not in namespace {namespace}"}
    return 200, workflow.api()


@contextmanager
def serve_argo(argo: LocalArgo) -> Iterator[str]:
    """Serve the API on a free loopback port; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                status, doc = 400, {"code": 3, "message": "the body is not JSON"}
            else:
                status, doc = _answer(argo, method, self.path.split("?", 1)[0], body,
                                      self.headers.get("authorization", ""))
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._reply("GET")

        def do_POST(self) -> None:
            self._reply("POST")

        def log_message(self, format: str, *args: Any) -> None:
            return

    with serve_http(Handler) as url:
        yield url

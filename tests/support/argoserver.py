"""A loopback server that answers the Argo Server's workflow endpoints (submit, get).

Each submit request body is deserialized strictly into the argo-workflows SDK's own model
(``WorkflowSubmitRequest``; unknown fields fail), and the path, namespace, resource kind and bearer
token are checked, as the real server would. Workflows it accepts are recorded for assertions.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from .loopback import serve_http
from .procs import free_port

__all__ = ["FakeArgoServer", "fake_argo_server", "submit_request_model"]


@dataclass
class FakeArgoServer:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    workflows: dict[str, dict[str, Any]] = field(default_factory=dict)
    templates: set[str] = field(default_factory=lambda: {"train", "batch-inference", "drift-check"})


def submit_request_model(body: bytes) -> Any:
    """Deserialize a request body into the SDK's WorkflowSubmitRequest, strictly (unknown fields fail)."""
    from argo_workflows.api_client import ApiClient
    from argo_workflows.model.io_argoproj_workflow_v1alpha1_workflow_submit_request import (
        IoArgoprojWorkflowV1alpha1WorkflowSubmitRequest as Model,
    )

    class Response:
        data = body

        def getheader(self, name: str) -> None:
            return None

    model = ApiClient().deserialize(Response(), (Model,), True)
    known = set(Model.attribute_map.values())
    unknown = set(json.loads(body)) - known
    assert not unknown, f"fields the Argo Server does not know: {unknown}"
    return model


@contextlib.contextmanager
def fake_argo_server(token: str) -> Iterator[FakeArgoServer]:
    """A loopback server answering the Argo Server's submit and get endpoints for bearer ``token``."""
    port = free_port()
    state = FakeArgoServer(url=f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") != f"Bearer {token}":
                self._reply(401, {"code": 16, "message": "token not valid"})
                return False
            return True

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append({"method": "POST", "path": self.path, "body": body,
                                   "content_type": self.headers.get("Content-Type")})
            if not self._authorized():
                return
            parts = self.path.strip("/").split("/")
            if parts[:3] != ["api", "v1", "workflows"] or len(parts) != 5 or parts[4] != "submit":
                self._reply(404, {"code": 5, "message": "Not Found"})
                return
            try:
                request = submit_request_model(body)
            except Exception as exc:  # the test reads the reason from the response
                self._reply(400, {"code": 3, "message": f"bad request body: {exc}"})
                return
            if request.namespace != parts[3] or request.resource_kind != "WorkflowTemplate":
                self._reply(400, {"code": 3, "message": "namespace or kind mismatch"})
                return
            if request.resource_name not in state.templates:
                self._reply(404, {"code": 5, "message": f"workflowtemplates {request.resource_name!r} not found"})
                return
            name = f"{request.resource_name}-abc12"
            workflow = {
                "metadata": {"name": name, "namespace": parts[3], "labels": {"mlops.io/model": "wine-classifier"}},
                "spec": {"workflowTemplateRef": {"name": request.resource_name}},
                "status": {"phase": "Running", "startedAt": "2025-01-01T00:00:00Z", "progress": "1/2",
                           "nodes": {name: {"displayName": "train", "type": "Pod", "phase": "Succeeded",
                                            "startedAt": "2025-01-01T00:00:01Z", "outputs": {"exitCode": "0"}},
                                     "x": {"displayName": "promote", "type": "Pod", "phase": "Running",
                                           "startedAt": "2025-01-01T00:01:00Z"}},
                           "someFieldFromANewerServer": True},
            }
            state.workflows[name] = workflow
            self._reply(200, workflow)

        def do_GET(self) -> None:
            state.requests.append({"method": "GET", "path": self.path.split("?")[0]})
            if not self._authorized():
                return
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts[:3] == ["api", "v1", "workflows"] and len(parts) == 5 and parts[4] in state.workflows:
                self._reply(200, state.workflows[parts[4]])
            else:
                self._reply(404, {"code": 5, "message": "workflows.argoproj.io not found"})

    with serve_http(Handler, port):
        yield state

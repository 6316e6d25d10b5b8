"""`mlops workflow submit|status` against a loopback server that answers the Argo Server endpoints.

The server checks each request body against the SDK's own model (the Argo Server's
WorkflowSubmitRequest), the path, the namespace and the bearer token, as the real server would.
Also the template helper steps (`shards`, `batch-summary`, `expect-exit`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from support.services import free_port

from mlops_workflows.cli import main

TOKEN = "test-token-123"


@dataclass
class FakeArgoServer:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    workflows: dict[str, dict[str, Any]] = field(default_factory=dict)
    templates: set[str] = field(default_factory=lambda: {"train", "batch-inference", "drift-check"})


def _submit_request_model(body: bytes) -> Any:
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


@pytest.fixture
def argo_server() -> Iterator[FakeArgoServer]:
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
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
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
                request = _submit_request_model(body)
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

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def argo_env(monkeypatch: pytest.MonkeyPatch, argo_server: FakeArgoServer) -> FakeArgoServer:
    monkeypatch.setenv("MLOPS_ARGO_SERVER_URL", argo_server.url)
    monkeypatch.setenv("MLOPS_ARGO_NAMESPACE", "mlops")
    monkeypatch.setenv("ARGO_TOKEN", TOKEN)
    monkeypatch.setenv("MLOPS_ARGO_TIMEOUT_S", "5")
    return argo_server


def test_submit_sends_a_valid_submit_request(argo_env: FakeArgoServer, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["workflow", "submit", "train", "-p", "model=wine-classifier", "-p", "trigger=manual",
                 "-l", "mlops.io/requested-by=alice"])
    assert code == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == "train-abc12"
    [request] = argo_env.requests
    assert request["path"] == "/api/v1/workflows/mlops/submit"
    assert request["content_type"] == "application/json"
    model = _submit_request_model(request["body"])
    assert model.namespace == "mlops" and model.resource_kind == "WorkflowTemplate"
    assert model.resource_name == "train"
    assert model.submit_options.parameters == ["model=wine-classifier", "trigger=manual"]
    assert model.submit_options.labels == "mlops.io/requested-by=alice"
    assert json.loads(request["body"])["submitOptions"]["parameters"] == ["model=wine-classifier", "trigger=manual"]


def test_status_prints_phase_and_steps(argo_env: FakeArgoServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workflow", "submit", "train", "-p", "model=wine-classifier"]) == 0
    capsys.readouterr()
    assert main(["workflow", "status", "train-abc12"]) == 0
    out = capsys.readouterr().out
    assert "Phase:      Running" in out and "Progress:   1/2" in out
    assert out.index("train ") < out.index("promote")
    assert argo_env.requests[-1] == {"method": "GET", "path": "/api/v1/workflows/mlops/train-abc12"}
    assert main(["workflow", "status", "train-abc12", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"]["phase"] == "Running"


def test_token_file_and_bearer_prefix(argo_env: FakeArgoServer, monkeypatch: pytest.MonkeyPatch,
                                      tmp_path: Path) -> None:
    monkeypatch.delenv("ARGO_TOKEN")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.setenv("MLOPS_ARGO_TOKEN_FILE", str(token_file))
    assert main(["workflow", "submit", "drift-check", "-p", "model=wine-classifier"]) == 0
    monkeypatch.delenv("MLOPS_ARGO_TOKEN_FILE")
    monkeypatch.setenv("ARGO_TOKEN", f"Bearer {TOKEN}")
    assert main(["workflow", "status", "drift-check-abc12"]) == 0


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["workflow", "submit", "train", "-p", "model=x"], {"ARGO_TOKEN": "wrong"}, 2),
        (["workflow", "submit", "no-such-template"], {}, 2),
        (["workflow", "status", "no-such-workflow"], {}, 2),
        (["workflow", "submit", "train", "-p", "novalue"], {}, 2),
    ],
)
def test_errors_map_to_exit_codes(argo_env: FakeArgoServer, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str], argv: list[str], env: dict[str, str],
                                  expected: int) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(argv) == expected
    assert "error:" in capsys.readouterr().err


def test_unreachable_server_and_missing_url(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLOPS_ARGO_SERVER_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLOPS_ARGO_TIMEOUT_S", "2")
    assert main(["workflow", "status", "x"]) == 4
    monkeypatch.delenv("MLOPS_ARGO_SERVER_URL")
    assert main(["workflow", "status", "x"]) == 2
    assert "MLOPS_ARGO_SERVER_URL" in capsys.readouterr().err


def test_shards_lists_the_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(3):
        pd.DataFrame({"a": range(10)}).to_parquet(tmp_path / f"in-{i}.parquet")
    assert main(["workflow", "shards", "--input", str(tmp_path), "--shards", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == ["1/2", "2/2"]
    assert main(["workflow", "shards", "--input", str(tmp_path / "empty"), "--shards", "2"]) == 2
    assert main(["workflow", "shards", "--input", str(tmp_path), "--shards", "0"]) == 2


def test_batch_summary_checks_every_shard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    pd.DataFrame({"prediction": [1, 2, 3]}).to_parquet(out / "part-00001-of-00002.parquet")
    assert main(["workflow", "batch-summary", "--output", str(out)]) == 2
    assert "2/2" in capsys.readouterr().err
    pd.DataFrame({"prediction": [4]}).to_parquet(out / "part-00002-of-00002.parquet")
    (tmp_path / "out.rejects").mkdir()
    pd.DataFrame({"x": [0]}).to_parquet(tmp_path / "out.rejects" / "rejects-00002-of-00002.parquet")
    assert main(["workflow", "batch-summary", "--output", str(out), "--shards", "2"]) == 0
    assert "4 rows predicted, 1 rows rejected" in capsys.readouterr().out


@pytest.mark.parametrize(("code", "expected"), [("0", 0), ("10", 0), ("11", 0), ("4", 4), ("1", 1), ("", 1)])
def test_expect_exit(code: str, expected: int) -> None:
    assert main(["workflow", "expect-exit", code, "--allowed", "0,10,11"]) == expected

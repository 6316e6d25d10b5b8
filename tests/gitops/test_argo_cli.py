"""`mlops workflow submit|status` against a loopback server that answers the Argo Server endpoints.

The server checks each request body against the SDK's own model (the Argo Server's
WorkflowSubmitRequest), the path, the namespace and the bearer token, as the real server would.
Also the template helper steps (`shards`, `batch-summary`, `expect-exit`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from support.argoserver import FakeArgoServer, fake_argo_server, submit_request_model
from support.procs import free_port

from mlops_workflows.cli import main

TOKEN = "test-token-123"


@pytest.fixture
def argo_server() -> Iterator[FakeArgoServer]:
    with fake_argo_server(TOKEN) as state:
        yield state


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
    model = submit_request_model(request["body"])
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

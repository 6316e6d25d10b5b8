"""The pod-execution harness: a rendered container resolves as its pod would, and runs locally."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.podexec import MissingReference, Rendered, external_secret_keys, render
from support.procs import free_port
from support.project import REPO

KIND_WORKFLOWS = REPO / "clusters" / "kind" / "workflow-templates"
S3_SECRET = {"mlops-s3": {"AWS_ACCESS_KEY_ID": "test-access", "AWS_SECRET_ACCESS_KEY": "test-secret"}}


def test_train_step_resolves_like_its_pod() -> None:
    rendered = render(KIND_WORKFLOWS)
    pod = rendered.workflow_step("train", "train", parameters={"model": "wine-classifier"}, secrets=S3_SECRET)
    assert pod.argv == ["mlops", "train", "--config", "/app/workflows/models/wine-classifier.yaml",
                        "--version-file", "/tmp/outputs/version"]
    env_cm = rendered.configmap("mlops-workflow-env")
    assert env_cm is not None
    for key, value in env_cm.items():
        assert pod.env[key] == value
    assert pod.env["AWS_SECRET_ACCESS_KEY"] == "test-secret"
    assert pod.env["HOME"] == "/tmp"  # the image's ENV (workflows/Dockerfile)
    assert "PATH" not in pod.env
    with pytest.raises(MissingReference, match="Secret mlops-s3"):
        rendered.workflow_step("train", "train", parameters={"model": "wine-classifier"})
    with pytest.raises(MissingReference, match="does not produce"):
        rendered.workflow_step(
            "train", "train", parameters={"model": "x"}, secrets={"mlops-s3": {"AWS_SESSION_TOKEN": "t"}}
        )
    with pytest.raises(MissingReference, match="match nothing"):
        pod.with_overrides({"http://nowhere.svc:1": "http://127.0.0.1:1"})


def test_missing_configmap_key_and_unresolved_parameter_fail() -> None:
    container = {
        "name": "main",
        "image": "ghcr.io/mlops-gitops/mlops-jobs:0.1.0",
        "args": ["promote", "{{inputs.parameters.model}}", "{{workflow.parameters.nowhere}}"],
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "missing"}}}],
    }
    template = {
        "kind": "WorkflowTemplate",
        "metadata": {"name": "wft"},
        "spec": {"templates": [{"name": "t", "inputs": {"parameters": [{"name": "model"}]}, "container": container}]},
    }
    cm = {"kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"present": "1"}}
    rendered = Rendered(Path("synthetic"), [template, cm], REPO)
    with pytest.raises(MissingReference, match="nowhere"):
        rendered.workflow_step("wft", "t", inputs={"model": "m"})
    container["args"] = ["promote", "{{inputs.parameters.model}}"]
    with pytest.raises(MissingReference, match="key 'missing' of ConfigMap cm"):
        rendered.workflow_step("wft", "t", inputs={"model": "m"})
    container["env"] = [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "missing", "optional": True}}},
        {"name": "Y", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "present"}}},
        {"name": "Z", "value": "y=$(Y)"},
    ]
    pod = rendered.workflow_step("wft", "t", inputs={"model": "m"})
    assert pod.argv == ["mlops", "promote", "m"]
    assert "X" not in pod.env and pod.env["Z"] == "y=1"


def test_rendered_train_step_runs_locally_with_its_pod_environment(tmp_path: Path) -> None:
    """The train step runs from its pod's command and environment; only the stated overrides apply.

    The tracking server's address is mapped to a loopback port where nothing listens: the process
    must reach exactly that address (it came from the rendered ConfigMap) and exit 4, unreachable.
    """
    port = free_port()
    rendered = render(KIND_WORKFLOWS)
    pod = rendered.workflow_step(
        "train", "train", parameters={"model": "wine-classifier"}, secrets=S3_SECRET
    ).with_overrides(
        {
            "http://mlflow.mlops.svc.cluster.local:5000": f"http://127.0.0.1:{port}",
            "/app/workflows/models": REPO / "workflows" / "models",
            "/tmp": tmp_path,
        }
    )
    assert pod.env["MLOPS_HOME"] == f"{tmp_path}/mlops"
    result = pod.run(cwd=tmp_path, extra_env={"MLOPS_TRACKING_TIMEOUT_S": "2"}, timeout=120)
    assert result.returncode == 4, result.stdout + result.stderr
    assert f"127.0.0.1:{port}" in result.stdout + result.stderr


def test_rollout_container_resolves_release_and_downward_api() -> None:
    """The model server's pod: MODEL_NAME from its label, MODEL_VERSION from the hashed release ConfigMap."""
    rendered = render(REPO / "serving" / "manifests" / "models" / "wine-classifier" / "staging")
    [rollout] = rendered.of_kind("Rollout")
    secrets = {
        name: dict.fromkeys(keys, "x")
        for name in ("model-store-credentials",)
        if (keys := external_secret_keys(name)) is not None
    }
    pod = rendered.rollout_container(rollout["metadata"]["name"], "model-server", secrets=secrets)
    assert pod.env["MODEL_NAME"] == "wine-classifier"
    assert pod.env["MODEL_VERSION"] == ""  # a fresh clone pins nothing
    assert pod.local_argv()[1:] == ["-m", "mlops_serving", *pod.argv[3:]]

"""The release-file line edit, and what the bot's commit changes in the rendered environment."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.fakehost import FakeGitHub
from support.promote import MODEL, GitOps, git

from mlops_platform.errors import ConfigError
from mlops_workflows.promote.release import parse_release, pinned_version, set_model_version

KUBECTL = shutil.which("kubectl")


def test_line_edit_keeps_every_other_byte() -> None:
    text = "# comment MODEL_VERSION=7\r\nIMAGE_TAG=0.1.0\r\n\r\nMODEL_VERSION=1\r\n# trailing\n"
    edited = set_model_version(text, 12)
    assert edited == text.replace("MODEL_VERSION=1\r\n", "MODEL_VERSION=12\r\n")
    assert pinned_version(edited) == 12 and parse_release(edited)["IMAGE_TAG"] == "0.1.0"
    assert set_model_version("MODEL_VERSION=1", 2) == "MODEL_VERSION=2"  # no final newline stays so


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("IMAGE_TAG=0.1.0\n", "exactly one MODEL_VERSION= line, found 0"),
        ("MODEL_VERSION=1\nMODEL_VERSION=2\n", "exactly one MODEL_VERSION= line, found 2"),
    ],
)
def test_line_edit_refuses_ambiguous_files(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        set_model_version(text, 3)


def test_pinned_version_must_be_a_number() -> None:
    with pytest.raises(ConfigError, match="not a version number"):
        pinned_version("MODEL_VERSION=latest\n")


def _render(gitops: GitOps, rev: str, dest: Path) -> dict[tuple[str, str], dict[str, Any]]:
    git(gitops.remote, "worktree", "add", "-q", "--detach", str(dest), rev)
    out = subprocess.run(
        [str(KUBECTL), "kustomize", str(dest / "serving/manifests/models" / MODEL / "production")],
        capture_output=True,
        text=True,
        check=True,
    )
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for key in sorted(set(a) | set(b)) for p in _diff(a.get(key), b.get(key), f"{path}.{key}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [p for i, (x, y) in enumerate(zip(a, b, strict=True)) for p in _diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [path]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")
def test_render_differs_only_in_the_release_configmap_and_the_rollout_pod_template(
    bot_env: dict[str, str],
    gitops: GitOps,
    github: FakeGitHub,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from mlops_workflows.cli import main

    assert main(["promote", MODEL, "--to", "production"]) == 0
    capsys.readouterr()
    before = _render(gitops, "main", tmp_path / "before")
    after = _render(gitops, "promote/wine-classifier/production/v2", tmp_path / "after")

    # one ConfigMap replaced by another (a new name hash): the release pin
    gone, new = sorted(set(before) - set(after)), sorted(set(after) - set(before))
    assert len(gone) == 1 and len(new) == 1
    assert gone[0][0] == new[0][0] == "ConfigMap"
    assert gone[0][1].startswith("wine-classifier-model-server-release-")
    assert new[0][1].startswith("wine-classifier-model-server-release-")
    assert before[gone[0]]["data"] == {"IMAGE_TAG": "0.1.0", "MODEL_VERSION": "1"}
    assert after[new[0]]["data"] == {"IMAGE_TAG": "0.1.0", "MODEL_VERSION": "2"}

    # every other object is identical, except the Rollout, which differs only in its pod template and in the
    # version annotation its outcome notifications report
    changed = {key: _diff(before[key], after[key]) for key in set(before) & set(after)}
    assert {key for key, paths in changed.items() if paths} == {("Rollout", "wine-classifier-model-server")}
    paths = changed[("Rollout", "wine-classifier-model-server")]
    assert sorted(paths) == [".metadata.annotations.mlops.io/model-version",
                             ".spec.template.spec.containers[0].env[1].valueFrom.configMapKeyRef.name"]
    rollout = after[("Rollout", "wine-classifier-model-server")]
    assert rollout["metadata"]["annotations"]["mlops.io/model-version"] == "2"
    env = rollout["spec"]["template"]["spec"]["containers"][0]["env"][1]
    assert env["name"] == "MODEL_VERSION" and env["valueFrom"]["configMapKeyRef"]["name"] == new[0][1]

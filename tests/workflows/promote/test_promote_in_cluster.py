"""The `train` WorkflowTemplate as a cluster runs it: train -> gate -> promote, from the rendered manifests.

The kind cluster's workflow-templates folder is rendered with the annotations Argo CD adds
(apps/workflow-templates.yaml, values of clusters/kind/kustomization.yaml); its `train` and
`promote` steps run with their pods' command and environment (support.podexec) against a real
MLflow tracking server (PostgreSQL, SeaweedFS S3) and a real Git smart-HTTP server that requires
the bot's token (support.githttp); the pull-request API is the local fake of Gitea's endpoints (the
kind cluster's Git server, clusters/kind/gitea/).

Overrides (service address or image path -> what the test runs), nothing else:

    http://mlflow.mlops.svc.cluster.local:5000            -> the MLflow server on loopback
    http://minio.mlops.svc.cluster.local:9000             -> the SeaweedFS S3 endpoint
    http://kube-prometheus-stack-prometheus...:9090       -> a closed loopback port (no Prometheus)
    http://gitea-http.gitea.svc.cluster.local:3000/api/v1 -> the fake Gitea API
    http://gitea-http...:3000/mlops/mlops-platform.git    -> the Git server (the git artifact's repo)
    /app/workflows/models, /work/repo, /tmp               -> this checkout's models, the clone, a temp dir
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import yaml
from support.fakegitea import FakeGitea, serve
from support.githttp import git_http_server
from support.mlflow_server import mlflow_server
from support.podexec import PodCommand, Rendered, render
from support.postgres import Postgres
from support.procs import free_port
from support.project import REPO
from support.seaweedfs import S3

TOKEN = "ghs_cluster-test-token-0123456789"
KIND = REPO / "clusters" / "kind"
SLUG = "mlops/mlops-platform"
STAGING = "serving/manifests/models/wine-classifier/staging"
MLFLOW_SVC = "http://mlflow.mlops.svc.cluster.local:5000"
MINIO_SVC = "http://minio.mlops.svc.cluster.local:9000"
PROMETHEUS_SVC = "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090"
GITEA_API = "http://gitea-http.gitea.svc.cluster.local:3000/api/v1"


def _cluster_config() -> dict[str, str]:
    """repoURL, targetRevision, repository of clusters/kind (what Argo CD puts into the annotations)."""
    doc = yaml.safe_load((KIND / "kustomization.yaml").read_text())
    [generator] = [g for g in doc["configMapGenerator"] if g["name"] == "cluster-config"]
    return dict(item.split("=", 1) for item in generator["literals"])


def _git(*args: str, cwd: Path, header: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Seed",
        "GIT_AUTHOR_EMAIL": "seed@example.org",
        "GIT_COMMITTER_NAME": "Seed",
        "GIT_COMMITTER_EMAIL": "seed@example.org",
    }
    if header is not None:  # an Authorization header for this command only (never stored)
        env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader", "GIT_CONFIG_VALUE_0": header})
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _seed(root: Path, base: str) -> Path:
    """The Git host's bare repository, holding this checkout's serving manifests (a fresh clone)."""
    bare = root / f"{SLUG}.git"
    bare.parent.mkdir(parents=True)
    assert _git("init", "-q", "--bare", "-b", base, str(bare), cwd=root).returncode == 0
    seed = root.parent / "seed"
    shutil.copytree(REPO / "serving" / "manifests", seed / "serving" / "manifests")
    assert _git("init", "-q", "-b", base, cwd=seed).returncode == 0
    assert _git("add", "-A", cwd=seed).returncode == 0
    assert _git("commit", "-q", "-m", "seed", cwd=seed).returncode == 0
    assert _git("push", "-q", str(bare), base, cwd=seed).returncode == 0
    return bare


def _fetch_git_artifact(pod: PodCommand, name: str, url: str, secrets: dict[str, dict[str, str]], dest: Path) -> None:
    """What Argo's git artifact driver does before the container starts: clone with the artifact's secrets."""
    spec = pod.artifacts[name]["git"]
    user = secrets[spec["usernameSecret"]["name"]][spec["usernameSecret"]["key"]]
    password = secrets[spec["passwordSecret"]["name"]][spec["passwordSecret"]["key"]]
    header = "Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    args = ["clone", "-q", "--branch", spec["branch"]]
    if spec.get("singleBranch"):
        args.append("--single-branch")
    cloned = _git(*args, url, str(dest), cwd=dest.parent, header=header)
    assert cloned.returncode == 0, cloned.stderr


def _promote_pod(
    rendered: Rendered, s3: S3, mlflow_uri: str, gitea: FakeGitea, clone: Path, tmp: Path, token: str
) -> tuple[PodCommand, dict[str, dict[str, str]]]:
    secrets = {
        "mlops-s3": {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key},
        "promotion-bot-git": {"GIT_USERNAME": "x-access-token", "GITHUB_TOKEN": token},
    }
    pod = rendered.workflow_step(
        "train", "promote", parameters={"model": "wine-classifier", "promote-to": "staging"}, secrets=secrets
    )
    pod = pod.with_overrides(
        {
            MLFLOW_SVC: mlflow_uri,
            MINIO_SVC: s3.endpoint_url,
            PROMETHEUS_SVC: f"http://127.0.0.1:{free_port()}",
            GITEA_API: gitea.api_url,
            "/work/repo": clone,
            "/tmp": tmp,
        }
    )
    return pod, secrets


def test_train_gate_promote_pushes_the_branch_with_the_token_and_is_refused_without(
    tmp_path: Path, postgres: Postgres, s3: S3
) -> None:
    config = _cluster_config()
    base = config["targetRevision"]
    rendered = render(
        KIND / "workflow-templates",
        common_annotations={
            "mlops.io/git-repo": config["repoURL"],
            "mlops.io/git-revision": base,
            "mlops.io/git-repository": config["repository"],
        },
    )
    git_root = tmp_path / "git" / "srv"
    git_root.mkdir(parents=True)
    bare = _seed(git_root, base)
    pod_tmp = tmp_path / "pod-tmp"
    pod_tmp.mkdir()

    backend, bucket = postgres.new_database("mlflow"), s3.new_bucket("mlflow")
    with (
        mlflow_server(tmp_path / "mlflow", backend, s3, bucket=bucket) as mlflow,
        git_http_server(git_root, "x-access-token", TOKEN) as githost,
        serve(FakeGitea(token=TOKEN)) as gitea,
    ):
        repo_url = githost.repo_url(f"{SLUG}.git")

        # -- train: the pod's command and environment, against the real tracking server
        s3_secret = {"mlops-s3": {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}}
        train = rendered.workflow_step("train", "train", parameters={"model": "wine-classifier"}, secrets=s3_secret)
        train = train.with_overrides(
            {
                MLFLOW_SVC: mlflow.tracking_uri,
                MINIO_SVC: s3.endpoint_url,
                "/app/workflows/models": REPO / "workflows" / "models",
                "/tmp": pod_tmp,
            }
        )
        trained = train.run(cwd=pod_tmp, timeout=600)
        assert trained.returncode == 0, trained.stdout + trained.stderr
        assert "gate passed: alias 'candidate' -> v1" in trained.stdout + trained.stderr

        # -- promote with a wrong token, then with none: the Git server refuses, nothing is written
        for token, expected in ((TOKEN + "-wrong", "was rejected"), ("", "no token is set")):
            clone = tmp_path / f"clone-{len(token)}"
            pod, secrets = _promote_pod(rendered, s3, mlflow.tracking_uri, gitea, clone, pod_tmp, token)
            assert pod.artifacts["repo"]["git"]["repo"] == config["repoURL"]
            _fetch_git_artifact(
                pod,
                "repo",
                repo_url,
                {**secrets, "promotion-bot-git": {"GIT_USERNAME": "x-access-token", "GITHUB_TOKEN": TOKEN}},
                clone,
            )
            refused = pod.run(cwd=pod_tmp, timeout=300)
            assert refused.returncode == 2, refused.stdout + refused.stderr
            assert "the Git host refused the bot" in refused.stderr and expected in refused.stderr
            assert TOKEN not in refused.stdout + refused.stderr
        assert _branches(bare) == {base}
        assert gitea.pulls == {}

        # -- promote with the token: the branch is pushed over authenticated smart HTTP, the PR opened
        clone = tmp_path / "clone"
        pod, secrets = _promote_pod(rendered, s3, mlflow.tracking_uri, gitea, clone, pod_tmp, TOKEN)
        _fetch_git_artifact(pod, "repo", repo_url, secrets, clone)
        pushes_before = len(githost.pushes())
        promoted = pod.run(cwd=pod_tmp, timeout=300)
        out = promoted.stdout + promoted.stderr
        assert promoted.returncode == 0, out
        assert "pushed promote/wine-classifier/staging/v1" in out
        assert [r.status for r in githost.pushes()[pushes_before:]] == [200]
        assert all(r.user == "x-access-token" for r in githost.pushes()[pushes_before:])
        assert _branches(bare) == {base, "promote/wine-classifier/staging/v1"}
        [pr] = [p for p in gitea.pulls.values() if p["state"] == "open"]
        assert pr["title"] == "promote(wine-classifier): none -> v1 [staging]"
        assert pr["head"]["ref"] == "promote/wine-classifier/staging/v1" and pr["base"]["ref"] == base
        shown = _git(
            "--git-dir",
            str(bare),
            "show",
            "promote/wine-classifier/staging/v1:" + STAGING + "/release.env",
            cwd=tmp_path,
        ).stdout
        assert "MODEL_VERSION=1\n" in shown

        # the token went nowhere but the transport: not in the output, the clone's config or a file
        assert TOKEN not in out
        assert TOKEN not in (clone / ".git" / "config").read_text()
        assert not any(
            TOKEN in p.read_text(errors="ignore")
            for p in pod_tmp.rglob("*")
            if p.is_file() and p.stat().st_size < 1_000_000
        )

        # -- the same promotion again: the branch is up to date, one pull request
        again = pod.run(cwd=pod_tmp, timeout=300)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "is up to date" in again.stdout and len(gitea.pulls) == 1


def _branches(bare: Path) -> set[str]:
    out = subprocess.run(
        ["git", "--git-dir", str(bare), "for-each-ref", "--format=%(refname:short)", "refs/heads"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())

"""A canary's outcome acts by itself: the notification's request, then the rendered rollout-outcome step.

The Rollout comes from rendering the model's production folder of the test's Git repository (what
Argo CD would apply there); the notification engine's webhook body is the Go template of the
pinned chart values (infra/argo-rollouts/values.yaml) rendered for that Rollout, and must be a
valid WorkflowSubmitRequest of the argo-workflows SDK for the rollout-outcome template; its
parameters (nothing hand-copied) feed the rendered WorkflowTemplate, whose `act` step runs with its
pod's command and environment against a real MLflow tracking server, a Git smart-HTTP server that
requires authentication (the clone the git artifact would make) and the fake of the kind cluster's Git host API (Gitea).
Aborted -> exactly one revert pull request; completed -> alias moved and promotion tags; every event
again -> nothing changes.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.argoserver import submit_request_model
from support.fakegitea import FakeGitea, serve
from support.githttp import GitHttpServer, git_http_server
from support.mlflow_server import MlflowServer, mlflow_server
from support.podexec import render
from support.project import REPO
from support.promote import git
from support.seaweedfs import S3

from mlops_workflows.promote.release import drop_unpinned

pytestmark = pytest.mark.integration

MODEL = "wine-classifier"
RELEASE = f"serving/manifests/models/{MODEL}/production/release.env"
KIND_WORKFLOWS = REPO / "clusters" / "kind" / "workflow-templates"
USER, TOKEN = "x-access-token", "gitea-bot-token-value"
GITEA_API = "http://gitea-http.gitea.svc.cluster.local:3000/api/v1"  # the kind cluster's Git host
ROLLOUT = f"{MODEL}-model-server"


# -- the notification engine's request -------------------------------------------------------------

_ACTION = re.compile(r"\{\{\s*(.*?)\s*\}\}")


def _lookup(context: Any, path: str) -> Any:
    value = context
    for part in path.lstrip(".").split("."):
        value = value[part] if isinstance(value, dict) and part in value else None
    return value


def go_template(text: str, context: dict[str, Any]) -> str:
    """The two Go template actions the notification templates use: ``{{.a.b}}`` and
    ``{{index .a.b "key"}}`` (anything else fails the test)."""

    def one(match: re.Match[str]) -> str:
        action = match.group(1)
        if re.fullmatch(r"(\.[A-Za-z0-9_]+)+", action):
            value = _lookup(context, action)
        elif found := re.fullmatch(r'index ((?:\.[A-Za-z0-9_]+)+) "([^"]+)"', action):
            mapping = _lookup(context, found.group(1)) or {}
            value = mapping.get(found.group(2))
        else:
            raise AssertionError(f"unsupported template action {{{{{action}}}}}")
        return "<no value>" if value is None else str(value)  # what Go's text/template prints

    return _ACTION.sub(one, text)


def notification(trigger: str, rollout: dict[str, Any]) -> tuple[str, bytes]:
    """The URL path and body the webhook of ``trigger`` sends for ``rollout``."""
    values = yaml.safe_load((REPO / "infra" / "argo-rollouts" / "values.yaml").read_text())["notifications"]
    [send] = yaml.safe_load(values["triggers"][f"trigger.{trigger}"])
    [template_name] = send["send"]
    prefix = f"notifications.argoproj.io/subscribe.{trigger}."
    subscribed = [k for k in rollout["metadata"]["annotations"] if k.startswith(prefix)]
    [service] = [k.rsplit(".", 1)[1] for k in subscribed]
    webhook = yaml.safe_load(values["notifiers"][f"service.webhook.{service}"])
    template = yaml.safe_load(values["templates"][f"template.{template_name}"])["webhook"][service]
    assert template["method"] == "POST"
    assert webhook["headers"][1] == {"name": "Authorization", "value": "Bearer $argo-workflows-token"}
    path = "/" + webhook["url"].split("/", 3)[3]
    return path, go_template(template["body"], {"rollout": rollout}).encode()


def parameters(path: str, body: bytes, rendered: Any) -> dict[str, str]:
    """The workflow parameters the Argo Server takes from that request (checked like the server)."""
    request = submit_request_model(body)
    assert path == f"/api/v1/workflows/{request.namespace}/submit"
    template = rendered.find("WorkflowTemplate", request.resource_name)
    assert request.resource_kind == "WorkflowTemplate"
    assert template["metadata"]["namespace"] == request.namespace
    return dict(p.split("=", 1) for p in request.submit_options.parameters)


# -- the world ----------------------------------------------------------------------------------


@dataclass
class World:
    mlflow: MlflowServer
    s3: S3
    git: GitHttpServer
    gitea: FakeGitea
    seed: Path
    tmp: Path

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.mlflow.tracking_uri, registry_uri=self.mlflow.tracking_uri)

    def rollout(self) -> dict[str, Any]:
        """The production Rollout as Argo CD applies it from Git now, with the controller's revision."""
        git(self.seed, "pull", "-q", "--ff-only", "origin", "main")
        rendered = render(self.seed / "serving" / "manifests" / "models" / MODEL / "production")
        rollout: dict[str, Any] = rendered.find("Rollout", ROLLOUT)
        rollout["metadata"]["annotations"]["rollout.argoproj.io/revision"] = "7"
        return rollout

    def act(self, trigger: str, rollout: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        """The rollout-outcome workflow for that notification: its selected step, as its pod runs it."""
        rendered = render(KIND_WORKFLOWS, common_annotations={
            "mlops.io/git-repo": self.git.repo_url("gitops.git"),
            "mlops.io/git-revision": "main",
            "mlops.io/git-repository": f"{self.gitea.owner}/{self.gitea.name}",
        })
        params = parameters(*notification(trigger, rollout), rendered)
        templates = rendered.find("WorkflowTemplate", "rollout-outcome")["spec"]["templates"]
        main = next(t for t in templates if t["name"] == "main")
        chosen = []
        for step in (s for group in main["steps"] for s in group):
            when = step["when"].replace("{{workflow.parameters.outcome}}", params["outcome"])
            left, right = re.fullmatch(r"'(.*)' == '(.*)'", when).groups()  # type: ignore[union-attr]
            if left == right:
                chosen.append(step)
        [step] = chosen
        inputs = {p["name"]: p["value"] for p in step["arguments"]["parameters"]}
        secrets = {
            "mlops-s3": {"AWS_ACCESS_KEY_ID": self.s3.access_key, "AWS_SECRET_ACCESS_KEY": self.s3.secret_key},
            "promotion-bot-git": {"GIT_USERNAME": USER, "GITHUB_TOKEN": TOKEN},
        }
        pod = rendered.workflow_step("rollout-outcome", step["template"], parameters=params, inputs=inputs,
                                     secrets=secrets)
        # What the git input artifact does before the container starts: a clone at the revision.
        clone = self.tmp / f"artifact-{len(list(self.tmp.glob('artifact-*')))}"
        header = "Authorization: Basic " + base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
        git(self.tmp, "-c", f"http.extraHeader={header}", "clone", "-q", "--single-branch", "--branch", "main",
            self.git.repo_url("gitops.git"), str(clone))
        pod_tmp = self.tmp / "pod-tmp"
        pod_tmp.mkdir(exist_ok=True)
        local = pod.with_overrides({
            "http://mlflow.mlops.svc.cluster.local:5000": self.mlflow.tracking_uri,
            "http://minio.mlops.svc.cluster.local:9000": self.s3.endpoint_url,
            GITEA_API: self.gitea.api_url,
            "/work/repo": clone,
            "/tmp": pod_tmp,
        })
        return local.run(cwd=clone, timeout=120)

    def land(self, version: int, number: int) -> str:
        """A person merges the promotion pull request #number of ``version``."""
        branch = f"promote/{MODEL}/production/v{version}"
        git(self.seed, "checkout", "-q", "-B", branch, "origin/main")
        release = self.seed / RELEASE
        release.write_text(re.sub(r"(?m)^MODEL_VERSION=.*$", f"MODEL_VERSION={version}", release.read_text()))
        git(self.seed, "commit", "-q", "-am", f"promote {MODEL} to v{version} in production")
        git(self.seed, "checkout", "-q", "main")
        git(self.seed, "merge", "-q", "--no-ff", branch, "-m", f"Merge pull request #{number} from {branch}")
        git(self.seed, "push", "-q", "origin", "main")
        sha = git(self.seed, "rev-parse", "HEAD")
        self.gitea.pulls[number] = {
            "number": number, "html_url": f"http://gitea.example/o/r/pulls/{number}", "title": branch,
            "body": "", "state": "closed", "head": {"ref": branch}, "base": {"ref": "main"}, "labels": [],
            "merged": True, "merge_commit_sha": sha,
        }
        return sha


@pytest.fixture(scope="module")
def registry_server(tmp_path_factory: pytest.TempPathFactory, s3: S3) -> Iterator[Any]:
    """A real tracking server (SQLite store, S3 artifacts) where wine-classifier v1 and v2 passed
    their gates and v1 holds `production` (the bot reads registry metadata only)."""
    from mlflow import MlflowClient

    work = tmp_path_factory.mktemp("rollout-outcome-mlflow")
    with mlflow_server(work, f"sqlite:///{work}/mlflow.db", s3, bucket=s3.new_bucket("mlflow")) as server:
        client = MlflowClient(tracking_uri=server.tracking_uri, registry_uri=server.tracking_uri)
        experiment = client.create_experiment(MODEL)
        client.create_registered_model(MODEL)
        for accuracy in (0.95, 0.97):
            run = client.create_run(experiment)
            client.log_metric(run.info.run_id, "accuracy", accuracy)
            client.set_terminated(run.info.run_id)
            client.create_model_version(MODEL, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id,
                                        tags={"gate": "passed"})
        client.set_registered_model_alias(MODEL, "production", "1")
        yield server, s3


@pytest.fixture
def world(registry_server: Any, tmp_path: Path) -> Iterator[World]:
    server, s3 = registry_server
    srv = tmp_path / "srv"
    srv.mkdir()
    seed = tmp_path / "seed"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(srv / "gitops.git"))
    git(tmp_path, "init", "-q", "-b", "main", str(seed))
    shutil.copytree(REPO / "serving" / "manifests", seed / "serving" / "manifests")
    release = seed / RELEASE
    release.write_text(re.sub(r"(?m)^MODEL_VERSION=.*$", "MODEL_VERSION=1", release.read_text()))
    kustomization = release.with_name("kustomization.yaml")  # what the first promotion did
    kustomization.write_text(drop_unpinned(kustomization.read_text()))
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", "seed: production runs v1")
    with git_http_server(srv, USER, TOKEN) as git_server, serve(FakeGitea(token=TOKEN)) as gitea:
        header = "Authorization: Basic " + base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
        git(seed, "config", "http.extraHeader", header)
        git(seed, "remote", "add", "origin", git_server.repo_url("gitops.git"))
        git(seed, "push", "-q", "origin", "main")
        git(seed, "branch", "-q", "--set-upstream-to=origin/main", "main")
        yield World(server, s3, git_server, gitea, seed, tmp_path)


def _tags(world: World, version: str) -> dict[str, str]:
    tags = world.client().get_model_version(MODEL, version).tags
    return {k: v for k, v in tags.items() if k.startswith("promotion.")}


def test_completed_canary_moves_the_alias_once(world: World) -> None:
    sha = world.land(2, number=41)
    rollout = world.rollout()
    assert rollout["metadata"]["annotations"]["mlops.io/model-version"] == "2"

    done = world.act("on-rollout-completed", rollout)
    assert done.returncode == 0, done.stdout + done.stderr
    client = world.client()
    assert str(client.get_model_version_by_alias(MODEL, "production").version) == "2"
    tags = _tags(world, "2")
    assert tags["promotion.production.pr"] == "http://gitea.example/o/r/pulls/41"
    assert tags["promotion.production.commit"] == sha

    # The same event again (a duplicate notification or a retried step): nothing changes.
    again = world.act("on-rollout-completed", rollout)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to do" in again.stdout
    assert _tags(world, "2") == tags

    # A late event of the Rollout's earlier revision (v1), which Git no longer pins: nothing.
    late = json.loads(json.dumps(rollout))
    late["metadata"]["annotations"]["mlops.io/model-version"] = "1"
    stale = world.act("on-rollout-completed", late)
    assert stale.returncode == 0, stale.stdout + stale.stderr
    assert "no longer pins v1" in stale.stdout
    assert str(client.get_model_version_by_alias(MODEL, "production").version) == "2"
    assert _tags(world, "1") == {}


def test_aborted_canary_opens_exactly_one_revert_pull_request(world: World) -> None:
    world.land(2, number=41)
    rollout = world.rollout()

    aborted = world.act("on-rollout-aborted", rollout)
    assert aborted.returncode == 0, aborted.stdout + aborted.stderr
    branch = f"rollback/{MODEL}/production/v1"
    [pr] = [p for p in world.gitea.pulls.values() if p["state"] == "open"]
    assert pr["head"]["ref"] == branch and "v2" in pr["title"] and "v1" in pr["title"]
    pushed = git(world.seed, "ls-remote", "origin", f"refs/heads/{branch}")
    assert pushed, "the revert branch was not pushed"
    assert all(r.user == USER for r in world.git.pushes())

    # The same event again: the open pull request stays as it is (not updated, no second one).
    writes = len(world.gitea.calls("POST")) + len(world.gitea.calls("PATCH"))
    again = world.act("on-rollout-aborted", rollout)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already open" in again.stdout
    assert len(world.gitea.calls("POST")) + len(world.gitea.calls("PATCH")) == writes
    assert git(world.seed, "ls-remote", "origin", f"refs/heads/{branch}") == pushed

    # A person closes it without merging: a late event does not open it again.
    pr["state"] = "closed"
    late = world.act("on-rollout-aborted", rollout)
    assert late.returncode == 0, late.stdout + late.stderr
    assert "not reopened" in late.stdout
    assert not [p for p in world.gitea.pulls.values() if p["state"] == "open"] and len(world.gitea.pulls) == 2

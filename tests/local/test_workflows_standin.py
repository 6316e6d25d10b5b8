"""The local process runner for Argo Workflows on the rendered workflow templates, with real `mlops` processes.

The kind cluster's workflow-templates folder is rendered with `kubectl kustomize` (and the annotations
Argo CD adds); each test submits a WorkflowTemplate or CronWorkflow and checks what ran, as the
workflow controller would have run it: the drift check's DAG (continueOn, the exit-code parameter,
`depends`, the retry expression), a setting missing from the rendered environment, the retraining
branch submitting the train workflow through the stand-in's Argo Server API, and that API's RBAC.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.procs import require_binary
from support.project import REPO

from mlops_local.argoexpr import UnsupportedExpression, evaluate
from mlops_local.argoserver import allowed, serve_argo
from mlops_local.podspec import Rendered, render
from mlops_local.workflows import LocalArgo, UnsupportedFeature
from mlops_platform.errors import ConfigError

OVERLAY = REPO / "clusters" / "kind" / "workflow-templates"
ARGO_SERVER = "http://argo-workflows-server.argo.svc.cluster.local:2746"


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    require_binary("kubectl")
    return render(OVERLAY, repo=REPO, common_annotations={
        "mlops.io/git-repo": "http://127.0.0.1:9/unused.git", "mlops.io/git-revision": "main",
        "mlops.io/git-repository": "local/unused"})


def _argo(rendered: Rendered, tmp_path: Path, **services: str) -> LocalArgo:
    return LocalArgo(
        rendered, tmp_path / "workflows",
        secrets={"mlops-s3": {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}},
        services={"http://mlflow.mlops.svc.cluster.local:5000": f"sqlite:///{tmp_path}/mlflow.db", **services},
        objectstore=tmp_path / "objectstore", time_scale=0.05, log=tmp_path / "commands.log",
        image_paths={"/app/workflows/models": str(REPO / "workflows" / "models")})


def _without_setting(rendered: Rendered, key: str) -> Rendered:
    objects = copy.deepcopy(rendered.objects)
    [env] = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "mlops-workflow-env"]
    del env["data"][key]
    return Rendered(rendered.overlay, objects, rendered.repo)


@pytest.mark.parametrize(("text", "names", "expected"), [
    ("10 == 10", {}, True),
    ("0 == 10", {}, False),
    ("'staging' != 'none'", {}, True),
    ("'none' != 'none'", {}, False),
    ("asInt(lastRetry.exitCode) != 2 && asInt(lastRetry.exitCode) != 3", {"lastRetry.exitCode": "3"}, False),
    ("asInt(lastRetry.exitCode) != 2 && asInt(lastRetry.exitCode) != 3", {"lastRetry.exitCode": "4"}, True),
    ("asInt(lastRetry.exitCode) == 1 || asInt(lastRetry.exitCode) == 4", {"lastRetry.exitCode": "4"}, True),
    ("drift.Succeeded || drift.Failed", {"drift.Succeeded": False, "drift.Failed": True}, True),
    ("!(a.Succeeded) && (b || c)", {"a.Succeeded": False, "b": False, "c": True}, True),
])
def test_expressions_decide_as_argo_does(text: str, names: dict[str, Any], expected: bool) -> None:
    assert evaluate(text, names.__getitem__) is expected


@pytest.mark.parametrize("text", ["1 + 1", "len(x) == 1", "a ==", "'open", "x =~ 'y'"])
def test_expressions_it_does_not_evaluate_fail_clearly(text: str) -> None:
    with pytest.raises(UnsupportedExpression):
        evaluate(text, lambda name: 1)


@pytest.mark.parametrize(("where", "change", "named"), [
    ("spec", {"onExit": "cleanup"}, "onExit"),
    ("template", {"resource": {"action": "create", "manifest": "{}"}}, "resource"),
    ("template", {"outputs": {"artifacts": [{"name": "report", "path": "/tmp/r"}]}}, "outputs"),
    ("task", {"templateRef": {"name": "train", "template": "train"}}, "templateRef"),
])
def test_template_features_it_does_not_run_fail_the_submission(rendered: Rendered, tmp_path: Path, where: str,
                                                               change: dict[str, Any], named: str) -> None:
    objects = copy.deepcopy(rendered.objects)
    [wft] = [o for o in objects if o["kind"] == "WorkflowTemplate" and o["metadata"]["name"] == "drift-check"]
    target = {"spec": wft["spec"], "template": wft["spec"]["templates"][1],
              "task": wft["spec"]["templates"][0]["dag"]["tasks"][0]}[where]
    target.update(change)
    argo = _argo(Rendered(rendered.overlay, objects, rendered.repo), tmp_path)
    with pytest.raises(UnsupportedFeature, match=named):
        argo.submit("drift-check", {"model": "wine-classifier"})
    assert argo.workflows == {}  # nothing ran


def test_the_drift_check_dag_runs_its_outcome_step_and_omits_retrain_on_an_error(rendered: Rendered,
                                                                                  tmp_path: Path) -> None:
    """An empty registry: `mlops drift` exits 2 (not retried: the template retries 1 and 4 only), the drift
    task continues on failure, the outcome step gets exit code 2 as its parameter and fails the workflow,
    and retrain (depends outcome.Succeeded) does not run."""
    argo = _argo(rendered, tmp_path)
    workflow = argo.submit("", {}, cron="drift-check-wine-classifier")
    steps = {n.name: n for n in workflow.pods()}
    assert workflow.source == "CronWorkflow/drift-check-wine-classifier"
    assert workflow.parameters["window"] == "1h" and workflow.parameters["trigger"] == "cron"
    assert steps["drift"].command == ["mlops", "drift", "wine-classifier", "--alias", "production", "--last", "1h"]
    assert (steps["drift"].phase, steps["drift"].exit_code, steps["drift"].attempts) == ("Failed", 2, 1)
    assert "has no alias 'production'" in steps["drift"].message
    assert steps["outcome"].command[:4] == ["mlops", "workflow", "expect-exit", "2"]
    assert (steps["outcome"].phase, steps["outcome"].exit_code) == ("Failed", 2)
    assert steps["retrain"].phase == "Omitted" and steps["retrain"].attempts == 0
    assert workflow.phase == "Failed" and "outcome" in workflow.message


def test_the_drift_step_is_retried_when_the_tracking_server_is_unreachable(rendered: Rendered, tmp_path: Path
                                                                            ) -> None:
    """Exit 4 (service unreachable) is retried, twice, as the drift template's retryStrategy says; the
    outcome step (retryPolicy OnError) fails once with that code, and retrain does not run."""
    from support.procs import free_port

    argo = _argo(rendered, tmp_path, **{"http://mlflow.mlops.svc.cluster.local:5000": f"http://127.0.0.1:{free_port()}"})
    workflow = argo.submit("drift-check", {"model": "wine-classifier"})
    steps = {n.name: n for n in workflow.pods()}
    assert (steps["drift"].phase, steps["drift"].exit_code, steps["drift"].attempts) == ("Failed", 4, 3)
    assert "unreachable" in steps["drift"].message
    assert (steps["outcome"].phase, steps["outcome"].exit_code, steps["outcome"].attempts) == ("Failed", 4, 1)
    assert steps["retrain"].phase == "Omitted" and workflow.phase == "Failed"
    assert (tmp_path / "commands.log").read_text().count(" drift (attempt ") == 3


def test_a_setting_missing_from_the_rendered_environment_fails_the_step(rendered: Rendered, tmp_path: Path) -> None:
    """Without MLOPS_ARGO_SERVER_URL in the ConfigMap the retrain step cannot submit; nothing in the runner's
    own environment or replacements fills it in."""
    argo = _argo(_without_setting(rendered, "MLOPS_ARGO_SERVER_URL"), tmp_path, **{ARGO_SERVER: "http://127.0.0.1:9"})
    argo.env_replacements["MLOPS_ARGO_SERVER_URL"] = "http://127.0.0.1:9"  # replaces a present setting only
    workflow = argo.submit("drift-check", {"model": "wine-classifier"}, entrypoint="retrain")
    [retrain] = workflow.pods()
    assert retrain.phase == "Failed" and retrain.exit_code == 2
    assert retrain.attempts == 4  # the retrain template's retryStrategy: limit 3, policy Always, no expression
    assert "MLOPS_ARGO_SERVER_URL is not set" in retrain.message
    assert workflow.phase == "Failed"


@pytest.fixture
def served(rendered: Rendered, tmp_path: Path) -> Iterator[tuple[LocalArgo, str]]:
    argo = _argo(rendered, tmp_path)
    with serve_argo(argo) as url:
        argo.services[ARGO_SERVER] = url
        yield argo, url
        for workflow in argo.find(lambda w: True):
            argo.wait(workflow, 600)


def test_the_retrain_step_submits_the_train_workflow_through_the_argo_server_api(served: tuple[LocalArgo, str]
                                                                                 ) -> None:
    argo, _ = served
    drift = argo.submit("drift-check", {"model": "wine-classifier", "retrain-promote-to": "none", "team": "t1"},
                        entrypoint="retrain")
    [retrain] = drift.pods()
    assert retrain.phase == "Succeeded", retrain.message
    [train] = argo.find(lambda w: w.template == "train")
    assert retrain.result == train.name  # `mlops workflow submit` prints the created workflow's name
    assert train.submitted_by == "Argo Server API as ServiceAccount mlops-drift"
    assert {k: train.parameters[k] for k in ("model", "trigger", "team", "promote-to")} == {
        "model": "wine-classifier", "trigger": "drift", "team": "t1", "promote-to": "none"}
    argo.wait(train, 600)
    steps = {n.name: n for n in train.pods()}
    assert steps["train"].command == ["mlops", "train", "--config", "/app/workflows/models/wine-classifier.yaml",
                                      "--version-file", "/tmp/outputs/version"]
    assert steps["train"].phase == "Succeeded" and "wine-classifier v1  gate PASSED" in steps["train"].result
    assert steps["train"].outputs == {"version": "1"}  # read from the pod's /tmp volume
    assert steps["promote"].phase == "Skipped"  # when: promote-to != 'none'
    assert train.phase == "Succeeded"


def test_a_training_run_that_registers_nothing_promotes_nothing(rendered: Rendered, tmp_path: Path) -> None:
    """The second run on the same data and config registers nothing: the train step's empty `version` output
    skips the promote task, which would otherwise promote whatever `candidate` holds (after an aborted canary,
    the aborted version)."""
    argo = _argo(rendered, tmp_path)
    first = argo.submit("train", {"model": "wine-classifier", "promote-to": "none"})
    steps = {n.name: n for n in first.pods()}
    assert steps["train"].phase == "Succeeded" and steps["train"].outputs == {"version": "1"}
    second = argo.submit("train", {"model": "wine-classifier", "promote-to": "staging"})
    steps = {n.name: n for n in second.pods()}
    assert steps["train"].phase == "Succeeded" and "nothing registered" in steps["train"].result
    assert steps["train"].outputs == {"version": ""}
    assert steps["promote"].phase == "Skipped" and second.phase == "Succeeded"


def test_the_argo_server_allows_only_what_the_rendered_rbac_grants(served: tuple[LocalArgo, str]) -> None:
    from mlops_workflows.argo import ArgoClient, ArgoSettings, SubmitRequest

    argo, url = served
    for token, status in ((argo.tokens["mlops-workflow"], "HTTP 403"), ("not-a-token", "HTTP 401")):
        with ArgoClient(ArgoSettings(MLOPS_ARGO_SERVER_URL=url, ARGO_TOKEN=token)) as client, \
                pytest.raises(ConfigError, match=status):
            client.submit(SubmitRequest("train", ("model=wine-classifier",)))
    with ArgoClient(ArgoSettings(MLOPS_ARGO_SERVER_URL=url, ARGO_TOKEN=argo.tokens["rollout-notifier"])) as client, \
            pytest.raises(ConfigError, match="HTTP 403"):
        client.submit(SubmitRequest("train", ("model=wine-classifier",)))  # rollout-outcome only
    assert allowed(argo.rendered, "rollout-notifier", "mlops", "get", "workflowtemplates", "rollout-outcome")
    assert allowed(argo.rendered, "mlops-drift", "mlops", "create", "workflows")
    assert not allowed(argo.rendered, "mlops-workflow", "mlops", "create", "workflows")
    assert argo.workflows == {}

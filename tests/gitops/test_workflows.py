"""The WorkflowTemplates and CronWorkflows: every step is a real `mlops` command, hygiene is in place.

Each step's arguments are parsed with the CLI's own parser (``build_parser()``): a subcommand
or option that does not exist fails here, before a workflow fails in the cluster.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.gitops import CLUSTERS, REPO, of_kind, render

from mlops_workflows.cli import build_parser

MODELS = sorted(p.stem for p in (REPO / "workflows" / "models").glob("*.yaml"))
SAMPLES = {
    "model": MODELS[0],
    "input-uri": "s3://mlops-production/batch/in/",
    "output-uri": "s3://mlops-production/batch/out/",
    "git-repo": "https://example.invalid/repo.git",
    "git-revision": "main",
    "rollout": "models-production/wine-classifier-model-server",
    "version": "3",
    "outcome": "completed",
}
INPUT_SAMPLES = {"shard": "1/2", "exit-code": "10", "action": "--finalize"}
_VAR = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")


def _objects() -> list[dict[str, Any]]:
    return render(REPO / "workflows" / "manifests")


def _templates() -> dict[str, dict[str, Any]]:
    return {t["metadata"]["name"]: t for t in of_kind(_objects(), "WorkflowTemplate")}


def _parameters(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in (spec.get("arguments") or {}).get("parameters") or []}


def _sample(template: dict[str, Any], node: dict[str, Any], text: str) -> str:
    params = _parameters(template["spec"])

    def one(match: re.Match[str]) -> str:
        expr = match.group(1)
        if expr.startswith("workflow.parameters."):
            name = expr.removeprefix("workflow.parameters.")
            assert name in params, f"{template['metadata']['name']}: unknown parameter {name!r}"
            param = params[name]
            if "value" in param:
                return str(param["value"])
            return SAMPLES.get(name, "x")
        if expr.startswith("inputs.parameters."):
            name = expr.removeprefix("inputs.parameters.")
            declared = {p["name"] for p in (node.get("inputs") or {}).get("parameters") or []}
            assert name in declared, f"{node['name']}: input {name!r} not declared"
            return INPUT_SAMPLES[name]
        if expr == "item":
            return "1/2"
        raise AssertionError(f"{node['name']}: unexpected variable {expr!r}")

    return _VAR.sub(one, text)


def _container_steps() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    steps = []
    for name, template in sorted(_templates().items()):
        for node in template["spec"]["templates"]:
            if "container" in node:
                steps.append((name, template, node))
    return steps


STEP_IDS = [f"{name}.{node['name']}" for name, _, node in _container_steps()]


@pytest.mark.parametrize(("name", "template", "node"), _container_steps(), ids=STEP_IDS)
def test_every_step_calls_an_existing_mlops_subcommand(name: str, template: dict[str, Any],
                                                       node: dict[str, Any]) -> None:
    container = node["container"]
    assert container["command"] == ["mlops"], f"{name}.{node['name']} does not run the mlops CLI"
    args = [_sample(template, node, str(a)) for a in container["args"]]
    parser = build_parser()
    try:
        parsed = parser.parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"{name}.{node['name']}: `mlops {' '.join(args)}` is rejected by the CLI (exit {exc.code})")
    assert callable(parsed.handler)


def test_the_templates_exist_and_train_configs_ship_in_the_image() -> None:
    assert set(_templates()) == {"train", "batch-inference", "drift-check", "rollout-outcome"}
    train = _templates()["train"]
    [step] = [n for n in train["spec"]["templates"] if n["name"] == "train"]
    assert "/app/workflows/models/{{workflow.parameters.model}}.yaml" in step["container"]["args"]
    assert "COPY workflows/models /app/workflows/models" in (REPO / "workflows" / "Dockerfile").read_text()


def test_drift_branch_matches_the_drift_commands_exit_codes() -> None:
    from mlops_platform.exit_status import DRIFT_OUTCOMES, ExitStatus
    from mlops_workflows.jobs.drift import job

    drift = _templates()["drift-check"]
    [main] = [n for n in drift["spec"]["templates"] if n["name"] == drift["spec"]["entrypoint"]]
    tasks = {t["name"]: t for t in main["dag"]["tasks"]}
    assert tasks["drift"]["continueOn"] == {"failed": True}
    when = re.fullmatch(r"\{\{tasks\.drift\.exitCode\}\} == (\d+)", tasks["retrain"]["when"])
    assert when and int(when.group(1)) == ExitStatus.DRIFT
    [outcome] = [n for n in drift["spec"]["templates"] if n["name"] == tasks["outcome"]["template"]]
    args = outcome["container"]["args"]
    allowed = {int(c) for c in args[args.index("--allowed") + 1].split(",")}
    assert allowed == DRIFT_OUTCOMES
    assert set(job.EXIT_CODES.values()) <= allowed
    [retrain] = [n for n in drift["spec"]["templates"] if n["name"] == tasks["retrain"]["template"]]
    retrain_args = retrain["container"]["args"]
    assert retrain_args[:3] == ["workflow", "submit", "train"]
    assert "model={{workflow.parameters.model}}" in retrain_args and "trigger=drift" in retrain_args


def test_every_template_takes_its_models_semaphore() -> None:
    """One workflow per model at a time (the rest of each template's hygiene — deadlines, TTL, retries,
    resources, attribution labels — is the validator's: policy_workflows.py)."""
    for name, template in _templates().items():
        [semaphore] = template["spec"]["synchronization"]["semaphores"]
        assert semaphore["configMapKeyRef"]["key"] == "{{workflow.parameters.model}}", name


def test_every_model_has_a_semaphore_and_cron_workflows() -> None:
    [limits] = [c for c in of_kind(_objects(), "ConfigMap") if c["metadata"]["name"] == "mlops-workflow-limits"]
    assert sorted(limits["data"]) == MODELS
    crons = of_kind(_objects(), "CronWorkflow")
    for model in MODELS:
        kinds = {c["spec"]["workflowSpec"]["workflowTemplateRef"]["name"] for c in crons
                 if {"name": "model", "value": model} in c["spec"]["workflowSpec"]["arguments"]["parameters"]}
        assert kinds == {"batch-inference", "drift-check"}, model


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_clusters_place_workflow_pods_on_a_batch_pool(cluster: str) -> None:
    for template in of_kind(render(REPO / "clusters" / cluster / "workflow-templates"), "WorkflowTemplate"):
        spec = template["spec"]
        assert any(t["key"] == "mlops.io/pool" for t in spec["tolerations"]), cluster
        assert spec["affinity"]["nodeAffinity"], cluster


def _as_argocd_renders(cluster: str, tmp_path: Path) -> list[dict[str, Any]]:
    """The cluster's workflow-templates folder as Argo CD builds it: with the Application's
    ``kustomize.commonAnnotations`` added to that folder's kustomization (``kustomize edit add
    annotation``), in a copy laid out like the repository."""
    [app] = [a for a in of_kind(render(REPO / "clusters" / cluster), "Application")
             if a["metadata"]["name"] == "workflow-templates"]
    source = app["spec"]["source"]
    folder = Path(source["path"])
    shutil.copytree(REPO / "workflows" / "manifests", tmp_path / "workflows" / "manifests")
    # The whole cluster folder: its workflow-templates include siblings (prod-example's images/ Component).
    shutil.copytree(REPO / "clusters" / cluster, tmp_path / "clusters" / cluster)
    # ... and the components every cluster shares (clusters/components/batch-pool/).
    shutil.copytree(REPO / "clusters" / "components", tmp_path / "clusters" / "components")
    kfile = tmp_path / folder / "kustomization.yaml"
    kustomization = yaml.safe_load(kfile.read_text())
    kustomization["commonAnnotations"] = dict(source["kustomize"]["commonAnnotations"])
    kfile.write_text(yaml.safe_dump(kustomization))
    result = subprocess.run(["kubectl", "kustomize", str(tmp_path / folder)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if isinstance(d, dict)]


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_promotion_step_gets_the_clusters_repository(cluster: str, tmp_path: Path) -> None:
    """The Git coordinates written once in clusters/<name>/kustomization.yaml reach the ConfigMap the
    train workflow reads: clone URL and branch (git artifact), owner/name (MLOPS_PROMOTE_REPOSITORY)."""
    kustomization = yaml.safe_load((REPO / "clusters" / cluster / "kustomization.yaml").read_text())
    [generator] = [g for g in kustomization["configMapGenerator"] if g["name"] == "cluster-config"]
    config = dict(literal.split("=", 1) for literal in generator["literals"])
    objects = _as_argocd_renders(cluster, tmp_path)
    [cm] = [c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"] == "mlops-gitops"]
    assert cm["data"] == {"repo-url": config["repoURL"], "revision": config["targetRevision"],
                          "repository": config["repository"]}

    [train] = [t for t in of_kind(objects, "WorkflowTemplate") if t["metadata"]["name"] == "train"]
    [promote] = [t for t in train["spec"]["templates"] if t["name"] == "promote"]
    env = {e["name"]: e.get("valueFrom", {}).get("configMapKeyRef") for e in promote["container"].get("env", [])}
    assert env["MLOPS_PROMOTE_REPOSITORY"] == {"name": "mlops-gitops", "key": "repository"}
    assert env["MLOPS_PROMOTE_BASE_BRANCH"] == {"name": "mlops-gitops", "key": "revision"}
    for name in ("git-repo", "git-revision"):
        [param] = [p for p in train["spec"]["arguments"]["parameters"] if p["name"] == name]
        assert param["valueFrom"]["configMapKeyRef"]["name"] == "mlops-gitops"

"""hack/validate: each kind of seeded error is caught in a clean copy of the manifests. (Zero problems
on the repository itself is hack/verify-manifests.sh.)"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from support.gitops import REPO, copy_validated

from mlops_gitops.manifests import ValidateOptions, validate_repo


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository's manifests (and the Dockerfiles they need)."""
    return copy_validated(tmp_path_factory.mktemp("repo"))


def _problems(root: Path) -> set[str]:
    options = ValidateOptions.from_env(root, crd_schemas=ValidateOptions.from_env(REPO).crd_schemas)
    return {str(p) for p in validate_repo(options).problems}


@pytest.fixture(scope="module")
def baseline(pristine: Path) -> set[str]:
    return _problems(pristine)


def test_copied_manifests_have_no_problems(baseline: set[str]) -> None:
    """The copy the seeded errors go into is clean, so each seeded error is the only change."""
    assert baseline == set(), "\n".join(sorted(baseline))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


BASE = Path("serving/manifests/base")


def _misspelled_rollout_field(root: Path) -> None:
    _edit(root / BASE / "rollout.yaml", "abortScaleDownDelaySeconds:", "abortScaleDownDelaySecond:")


def _unknown_route(root: Path) -> None:
    _edit(root / BASE / "virtualservice.yaml", "- name: primary", "- name: main")


def _canary_service_selects_nothing(root: Path) -> None:
    _edit(root / BASE / "service-canary.yaml", "  selector:\n", "  selector:\n    track: canary\n")


def _unknown_metric(root: Path) -> None:
    _edit(root / BASE / "analysistemplate-latency.yaml", "mlops_serving_request_duration_seconds_bucket",
          "mlops_serving_request_latency_seconds_bucket")


def _missing_application_path(root: Path) -> None:
    _edit(root / "apps" / "models-applicationset.yaml", "path: serving/manifests/gateway",
          "path: serving/manifests/ingress")


def _missing_generator_path(root: Path) -> None:
    _edit(root / "apps" / "models-applicationset.yaml", "path: serving/manifests/models/*/*",
          "path: serving/manifests/model/*/*")


def _committed_secret(root: Path) -> None:
    (root / "apps" / "secret.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: leaked\n  namespace: argocd\n"
        "stringData:\n  password: hunter2\n", encoding="utf-8")


def _unreferenced_manifest(root: Path) -> None:
    (root / "apps" / "forgotten.yaml").write_text(
        (root / "apps" / "mesh.yaml").read_text(encoding="utf-8").replace("name: mesh", "name: forgotten", 1),
        encoding="utf-8")


def _unreferenced_manifest_outside_kustomizations(root: Path) -> None:
    (root / "infra" / "extra").mkdir()
    (root / "infra" / "extra" / "serviceaccount.yaml").write_text(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: extra\n  namespace: mlops\n", encoding="utf-8")


def _service_url_in_wrong_namespace(root: Path) -> None:
    _edit(root / "serving/manifests/components/staging/kustomization.yaml", "http://mlflow.mlops.svc",
          "http://mlflow.mlflow.svc")


def _service_url_wrong_port(root: Path) -> None:
    _edit(root / "workflows/manifests/configmap-workflow-env.yaml", "mlflow.mlops.svc.cluster.local:5000",
          "mlflow.mlops.svc.cluster.local:8080")


def _unpinned_image(root: Path) -> None:
    _edit(root / BASE / "rollout.yaml", "model-server:0.1.0", "model-server")
    _edit(root / "serving/manifests/transformers/replacements-release.yaml", "data.IMAGE_TAG", "data.MISSING")


def _gateway_replicas_under_autoscaler(root: Path) -> None:
    _edit(root / "clusters/prod-example/values/istio-gateway.yaml",
          "autoscaling:\n  enabled: true\n  minReplicas: 3\n", "replicaCount: 3\nautoscaling:\n  minReplicas: 3\n")


def _istiod_replicas_under_autoscaler(root: Path) -> None:
    _edit(root / "infra/istio/values-istiod.yaml", "autoscaleEnabled: false", "autoscaleEnabled: true")


def _minio_mc_image_without_job(root: Path) -> None:
    _edit(root / "infra/minio/values.yaml", "existingSecret: minio-root",
          "mcImage:\n  tag: RELEASE.2024-11-21T17-21-54Z\nexistingSecret: minio-root")


def _workflow_namespaces_without_rbac(root: Path) -> None:
    _edit(root / "infra/argo-workflows/values.yaml", "controller:\n", "controller:\n  workflowNamespaces: [mlops]\n")


def _model_config_alone(root: Path) -> None:
    """A third model's training config, without what `mlops models add` would write beside it."""
    text = (root / "workflows/models/wine-classifier.yaml").read_text(encoding="utf-8")
    (root / "workflows/models/added-classifier.yaml").write_text(
        text.replace("model_name: wine-classifier", "model_name: added-classifier"), encoding="utf-8")


def _chart_bumped_without_rereading_rules(root: Path) -> None:
    _edit(root / "apps/istio-gateway.yaml", "targetRevision: 1.30.3", "targetRevision: 1.31.0")


def _application_without_self_heal(root: Path) -> None:
    _edit(root / "apps" / "mesh.yaml", "selfHeal: true", "selfHeal: false")


def _workflow_with_unknown_priority_class(root: Path) -> None:
    _edit(root / "workflows/manifests/workflowtemplate-rollout-outcome.yaml", "podPriorityClassName: mlops-standard",
          "podPriorityClassName: mlops-urgent")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_misspelled_rollout_field, "Additional properties are not allowed ('abortScaleDownDelaySecond'"),
        (_unknown_route, "route 'primary' is not a route of VirtualService"),
        (_canary_service_selects_nothing, "canaryService 'wine-classifier-model-server-canary' selects none"),
        (_unknown_metric, "'mlops_serving_request_latency_seconds_bucket', which the project's code does not export"),
        (_missing_application_path, "source path 'serving/manifests/ingress' does not exist"),
        (_missing_generator_path, "git directories path 'serving/manifests/model/*/*' matches no directory"),
        (_committed_secret, "Secret with plain data is committed"),
        (_unreferenced_manifest, "apps/forgotten.yaml: holds Kubernetes objects but is not included by any "
                                 "kustomization or Application"),
        (_unreferenced_manifest_outside_kustomizations, "infra/extra/serviceaccount.yaml: holds Kubernetes objects "
                                                        "but is not included by any kustomization or Application"),
        (_service_url_in_wrong_namespace, "names Service 'mlflow' in namespace 'mlflow', which no manifest"),
        (_service_url_wrong_port, "Service mlops/mlflow has no port 8080"),
        (_unpinned_image, "kubectl kustomize failed"),
        (_gateway_replicas_under_autoscaler, "Application/argocd/istio-gateway: chart gateway 1.30.3: replicaCount has "
                                             "no effect: the chart sets the Deployment's replicas only when "
                                             "autoscaling.enabled is false"),
        (_istiod_replicas_under_autoscaler, "Application/argocd/istiod: chart istiod 1.30.3: replicaCount has no "
                                            "effect"),
        (_minio_mc_image_without_job, "Application/argocd/minio: chart minio 5.4.0: mcImage has no effect"),
        (_workflow_namespaces_without_rbac, "chart argo-workflows 0.47.5: controller.workflowNamespaces has no effect"),
        (_application_without_self_heal, "Application/argocd/mesh: syncPolicy.automated must prune and selfHeal"),
        (_workflow_with_unknown_priority_class, "WorkflowTemplate/mlops/rollout-outcome: podPriorityClassName "
                                                "'mlops-urgent' is no PriorityClass of this repository"),
        (_model_config_alone, "workflows/models/added-classifier.yaml: model added-classifier: missing CronWorkflow "
                              "batch-inference-added-classifier in workflows/manifests/; run `mlops models sync`"),
        (_chart_bumped_without_rereading_rules, "chart gateway 1.31.0: the values rule for it was read from the chart "
                                                "at 1.30.3"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_seeded_error_is_caught(pristine: Path, baseline: set[str], tmp_path: Path,
                                mutate: Callable[[Path], None], expected: str) -> None:
    root = tmp_path / "repo"
    shutil.copytree(pristine, root)
    mutate(root)
    new = _problems(root) - baseline
    assert any(expected in line for line in new), "\n".join(sorted(new)) or "no new problem"


def test_kind_without_schema_is_a_problem(pristine: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(pristine, root)
    (root / "apps" / "unknown.yaml").write_text(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n", encoding="utf-8")
    assert any("no schema for example.com/v1 Widget" in line for line in _problems(root))


def test_crd_schemas_are_made_strict() -> None:
    from mlops_gitops.manifests.schemas import tighten

    loose = {"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}},
                                              "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                                                       "properties": {"c": {"type": "string"}}}},
             "oneOf": [{"properties": {"a": {}}, "required": ["a"]}]}
    strict = tighten(loose)
    assert strict["additionalProperties"] is False
    assert strict["properties"]["a"]["additionalProperties"] is False
    assert "additionalProperties" not in strict["properties"]["free"]
    assert "additionalProperties" not in strict["oneOf"][0]

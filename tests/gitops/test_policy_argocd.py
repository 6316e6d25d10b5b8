"""The validator's app-of-apps policy (mlops_gitops.manifests.policy_argocd): each rule passes a good
bundle and names the problem in a bad one."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlops_gitops.manifests import Obj, Source, policy_argocd

BUNDLE = Path("clusters/demo")
CHART_REPO = "https://charts.example.com"
GIT_REPO = "https://git.example.com/org/gitops.git"


def _meta(name: str, wave: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "argocd", "annotations": {policy_argocd.WAVE: wave}, **extra}


def _application(name: str, wave: str, source: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": _meta(name, wave, **metadata),
        "spec": {
            "project": "platform", "source": source,
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "demo"},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True},
                           "retry": {"limit": 5, "backoff": {"duration": "10s", "factor": 2}}},
        },
    }


def good_bundle() -> list[dict[str, Any]]:
    return [
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject", "metadata": _meta("platform", "-10"),
         "spec": {"sourceRepos": [GIT_REPO, CHART_REPO],
                  "destinations": [{"namespace": "demo", "server": "https://kubernetes.default.svc"}]}},
        _application("root", "-5", {"repoURL": GIT_REPO, "targetRevision": "main", "path": "clusters/demo"},
                     labels={policy_argocd.BOOTSTRAP_LABEL: "true"}),
        _application("chart", "0", {"repoURL": CHART_REPO, "chart": "demo", "targetRevision": "1.2.3",
                                     "helm": {"valueFiles": ["$values/infra/demo/values.yaml"]}}),
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet", "metadata": _meta("models", "5"),
         "spec": {"template": {"spec": {"project": "platform", "syncPolicy": {"syncOptions": ["PruneLast=true"]},
                                        "source": {"repoURL": GIT_REPO, "path": "x"}}}}},
    ]


def _problems(docs: list[dict[str, Any]]) -> list[str]:
    objects = [Obj(doc, Source(BUNDLE, rendered=True)) for doc in docs]
    return [str(p) for p in policy_argocd.check_bundle(objects, BUNDLE)]


def _by_name(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["metadata"]["name"] == name]
    return doc


def _no_wave(docs: list[dict[str, Any]]) -> None:
    del _by_name(docs, "chart")["metadata"]["annotations"]


def _project_after_apps(docs: list[dict[str, Any]]) -> None:
    _by_name(docs, "platform")["metadata"]["annotations"][policy_argocd.WAVE] = "0"


def _manual_sync(docs: list[dict[str, Any]]) -> None:
    _by_name(docs, "chart")["spec"]["syncPolicy"]["automated"] = {"prune": True}


def _flat_retry(docs: list[dict[str, Any]]) -> None:
    _by_name(docs, "chart")["spec"]["syncPolicy"]["retry"]["backoff"]["factor"] = 1


def _creates_namespace(docs: list[dict[str, Any]]) -> None:
    _by_name(docs, "models")["spec"]["template"]["spec"]["syncPolicy"]["syncOptions"] = ["CreateNamespace=true"]


def _labels_namespace(docs: list[dict[str, Any]]) -> None:
    _by_name(docs, "chart")["spec"]["syncPolicy"]["managedNamespaceMetadata"] = {"labels": {"a": "b"}}


def _floating_chart(docs: list[dict[str, Any]]) -> None:
    _by_name(docs, "chart")["spec"]["source"]["targetRevision"] = "*"


def _chart_repo_not_allowed(docs: list[dict[str, Any]]) -> None:
    _by_name(docs, "platform")["spec"]["sourceRepos"] = [GIT_REPO]


def _any_repo(docs: list[dict[str, Any]]) -> None:
    _by_name(docs, "platform")["spec"]["sourceRepos"].append("*")


def _any_namespace(docs: list[dict[str, Any]]) -> None:
    _by_name(docs, "platform")["spec"]["destinations"].append({"namespace": "*", "server": "x"})


def _root_elsewhere(docs: list[dict[str, Any]]) -> None:
    _by_name(docs, "root")["spec"]["source"]["path"] = "clusters/other"


def _root_unlabelled(docs: list[dict[str, Any]]) -> None:
    del _by_name(docs, "root")["metadata"]["labels"]


def _root_with_finalizer(docs: list[dict[str, Any]]) -> None:
    _by_name(docs, "root")["metadata"]["finalizers"] = ["resources-finalizer.argocd.argoproj.io"]


def test_a_good_bundle_has_no_problem() -> None:
    assert _problems(good_bundle()) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_no_wave, "Application/argocd/chart: no integer argocd.argoproj.io/sync-wave annotation"),
        (_project_after_apps, "AppProject/argocd/platform: sync wave 0 is not before every Application's"),
        (_manual_sync, "Application/argocd/chart: syncPolicy.automated must prune and selfHeal"),
        (_flat_retry, "Application/argocd/chart: syncPolicy.retry.backoff.factor must be at least 2 (is 1)"),
        (_creates_namespace, "ApplicationSet/argocd/models: CreateNamespace=true"),
        (_labels_namespace, "Application/argocd/chart: syncPolicy.managedNamespaceMetadata"),
        (_floating_chart, "chart demo is not pinned to a version (targetRevision '*')"),
        (_chart_repo_not_allowed, f"repository '{CHART_REPO}' is not among the source repositories of "
                                  "AppProject 'platform'"),
        (_any_repo, "AppProject/argocd/platform: sourceRepos allows every repository"),
        (_any_namespace, "AppProject/argocd/platform: destinations allow every namespace"),
        (_root_elsewhere, "the root Application syncs 'clusters/other', not its own cluster folder 'clusters/demo'"),
        (_root_unlabelled, "label it mlops.io/bootstrap"),
        (_root_with_finalizer, "the root Application has finalizers"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_each_rule_names_the_problem(mutate: Callable[[list[dict[str, Any]]], None], expected: str) -> None:
    docs = copy.deepcopy(good_bundle())
    mutate(docs)
    problems = _problems(docs)
    assert len(problems) == 1 and expected in problems[0], problems


def test_non_obvious_sync_options_need_a_comment(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "explained.yaml").write_text(
        "syncOptions:\n  # the CRDs are too large for a client-side apply\n  - ServerSideApply=true\n"
        "  - SkipDryRunOnMissingResource=true  # the CRD arrives in the same sync\n  - PruneLast=true\n")
    assert list(policy_argocd.check_sync_option_reasons(tmp_path)) == []
    (apps / "bare.yaml").write_text("syncOptions:\n  - PruneLast=true\n  - ServerSideApply=true\n")
    assert [str(p) for p in policy_argocd.check_sync_option_reasons(tmp_path)] == [
        "apps/bare.yaml:3: sync option ServerSideApply=true without a comment saying why"]


def test_chart_value_files_come_from_this_repository_and_exist(tmp_path: Path) -> None:
    """What the tests asserted of value files before; chartvalues.app_values reads them for the validator."""
    from mlops_gitops.manifests import chartvalues

    (tmp_path / "values.yaml").write_text("replicas: 2\n")
    doc = _by_name(good_bundle(), "chart")
    doc["spec"]["source"]["helm"]["valueFiles"] = ["$values/values.yaml", "$values/missing.yaml",
                                                   "https://example.com/values.yaml"]
    [(chart, version, values, problems)] = chartvalues.app_values(Obj(doc, Source(BUNDLE, rendered=True)), tmp_path)
    assert (chart, version, values) == ("demo", "1.2.3", {"replicas": 2})
    assert len(problems) == 2
    assert problems[0].startswith("value file '$values/missing.yaml' of chart demo cannot be read")
    assert problems[1] == ("value file 'https://example.com/values.yaml' of chart demo is not read from this "
                           "repository ($values/)")

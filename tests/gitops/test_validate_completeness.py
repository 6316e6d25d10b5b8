"""hack/validate: an environment of the list that lacks a piece, a piece of an environment the list
does not name, a cluster folder that copies shared content, and a replacement that selects its
target by position are each reported, naming what is wrong."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from support.gitops import REPO, copy_validated

from mlops_gitops.manifests import ValidateOptions, validate_repo

LIST = Path("infra/mlops_platform/environments.yaml")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_validated(tmp_path_factory.mktemp("repo"))


def _problems(root: Path) -> set[str]:
    options = ValidateOptions.from_env(root, crd_schemas=ValidateOptions.from_env(REPO).crd_schemas)
    return {str(p) for p in validate_repo(options).problems}


@pytest.fixture(scope="module")
def baseline(pristine: Path) -> set[str]:
    problems = _problems(pristine)
    assert problems == set(), "\n".join(sorted(problems))
    return problems


@pytest.fixture
def root(pristine: Path, baseline: set[str], tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    shutil.copytree(pristine, copy)
    return copy


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_half_added_environment_names_every_missing_piece(root: Path) -> None:
    """An environment listed, with only its folder of differences: each shared piece it lacks is
    named, with the file to change; the pieces that match models-* need nothing."""
    _edit(root / LIST, "  - staging\n", "  - staging\n  - uat\n")
    shutil.copytree(root / "serving/manifests/components/production", root / "serving/manifests/components/uat")
    _edit(root / "serving/manifests/components/uat/kustomization.yaml", "namespace: models-production",
          "namespace: models-uat")
    problems = "\n".join(sorted(_problems(root)))
    for expected in (
        "infra/namespaces/namespaces.yaml: environment uat: missing: the Namespace models-uat",
        "serving/manifests/gateway/gateway.yaml: environment uat: missing: the host models-uat/*.uat.mlops.local",
        "infra/minio/configmap-buckets.yaml: environment uat: missing: the bucket mlops-uat",
        "infra/secrets/models-uat: environment uat: missing: the environment's secrets",
        "apps: environment uat: missing: an Application syncing infra/secrets/models-uat",
        "clusters/kind/secret-store/rbac.yaml: environment uat: missing: model-api-keys-uat",
        "serving/manifests/models/wine-classifier: environment uat: missing: uat/",
    ):
        assert expected in problems, problems
    for enum in ("workflows/manifests/workflowtemplate-train.yaml: parameter promote-to: ",
                 "workflows/manifests/workflowtemplate-drift-check.yaml: parameter retrain-promote-to: "):
        assert any(line.startswith(enum) and line.endswith("missing: uat; run `mlops environments sync`")
                   for line in problems.splitlines()), problems
    assert "infra/mesh" not in problems and "appproject" not in problems, problems
    # The copied folder still names production's host and bucket.
    assert ("serving/manifests/components/uat/kustomization.yaml: environment uat: missing: the model host "
            "model.uat.mlops.local") in problems
    assert "missing: the object store s3://mlops-uat/" in problems


def test_environment_folder_not_in_the_list(root: Path) -> None:
    shutil.copytree(root / "serving/manifests/components/production", root / "serving/manifests/components/uat")
    assert "serving/manifests/components/uat: environment uat: not in infra/mlops_platform/environments.yaml" in \
        _problems(root)


def test_mesh_policy_that_lists_namespaces_must_list_every_environment(root: Path) -> None:
    _edit(root / "infra/mesh/authorizationpolicy-mlflow.yaml", 'namespaces: ["models-*"]',
          'namespaces: ["models-staging"]')
    assert ("infra/mesh/authorizationpolicy-mlflow.yaml: environment production: missing: models-production in "
            "the source namespaces (models-* covers all)") in _problems(root)


def test_bad_environment_list(root: Path) -> None:
    _edit(root / LIST, "  - staging\n", "  - staging\n  - candidate\n")
    assert any("'candidate' is reserved" in p for p in _problems(root))


def _positional_replacement(root: Path) -> None:
    _edit(root / "clusters/components/base/kustomization.yaml", "spec.sourceRepos.[=GIT_REPO_URL]",
          "spec.sourceRepos.0")


def _unguarded_patch_index(root: Path) -> None:
    _edit(root / "serving/manifests/components/production/kustomization.yaml",
          "      - op: test\n        path: /spec/hosts/0\n        value: model.mlops.local\n", "")


def _cluster_copies_root_app(root: Path) -> None:
    shutil.copy2(root / "clusters/components/base/root-app.yaml", root / "clusters/prod-example/root-app.yaml")


def _misspelt_values_file(root: Path) -> None:
    (root / "clusters/prod-example/values/minio.yaml").rename(root / "clusters/prod-example/values/mino.yaml")


def _empty_values_file(root: Path) -> None:
    (root / "clusters/prod-example/values/istiod.yaml").write_text("# nothing\n{}\n", encoding="utf-8")


def _cluster_repeats_another(root: Path) -> None:
    shutil.copy2(root / "clusters/kind/values/minio.yaml", root / "clusters/prod-example/values/minio.yaml")


def _wrong_cluster_name(root: Path) -> None:
    _edit(root / "clusters/prod-example/kustomization.yaml", "cluster=prod-example", "cluster=kind")


def _store_cannot_read_a_key(root: Path) -> None:
    _edit(root / "clusters/kind/secret-store/rbac.yaml", "      - rollout-notifier-token\n", "")


def _placeholder_not_after_clusters(root: Path) -> None:
    _edit(root / "apps/mlflow.yaml", "path: clusters/CLUSTER/mlflow", "path: infra/CLUSTER/mlflow")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_positional_replacement, "clusters/components/base/kustomization.yaml: replacements: target "
                                  "spec.sourceRepos.0 selects a list item by its position"),
        (_unguarded_patch_index, "serving/manifests/components/production/kustomization.yaml: patches: replace "
                                 "/spec/hosts/0 picks a list item by its index"),
        (_cluster_copies_root_app, "clusters/prod-example/root-app.yaml: cluster prod-example: copies the root "
                                   "Application"),
        (_misspelt_values_file, "clusters/prod-example/values/mino.yaml: cluster prod-example: is read by no "
                                "Application"),
        (_empty_values_file, "clusters/prod-example/values/istiod.yaml: cluster prod-example: changes nothing"),
        (_cluster_repeats_another, "clusters/prod-example/values/minio.yaml: cluster prod-example: repeats "
                                   "clusters/kind/values/minio.yaml"),
        (_wrong_cluster_name, "cluster-config says cluster=kind; it must be the folder's name prod-example"),
        (_store_cannot_read_a_key, "clusters/kind/secret-store/rbac.yaml: Role dev-secret-reader: cannot get the "
                                   "Secret rollout-notifier-token"),
        (_placeholder_not_after_clusters, "apps/mlflow.yaml: CLUSTER: 'infra/CLUSTER/mlflow'"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_cluster_structure(root: Path, mutate: Callable[[Path], None], expected: str) -> None:
    mutate(root)
    problems = _problems(root)
    assert any(expected in line for line in problems), "\n".join(sorted(problems)) or "no problem"

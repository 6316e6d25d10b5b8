"""The validator's image policy (mlops_gitops.manifests.policy_images): each rule passes a good input
and names the problem in a bad one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_gitops.manifests import Obj, Source, crossref, policy_images

GOOD_DOCKERFILE = """\
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
FROM ${PYTHON_IMAGE} AS build
RUN pip wheel --wheel-dir /wheels .
FROM registry.k8s.io/kubectl:v1.32.4 AS kubectl
FROM ${PYTHON_IMAGE}
COPY --from=build /wheels /wheels
USER 10001:10001
"""


def _dockerfile_problems(text: str) -> list[str]:
    return [str(p) for p in policy_images.check_dockerfile(Path("x/Dockerfile"), text)]


def test_a_good_dockerfile_has_no_problem() -> None:
    assert _dockerfile_problems(GOOD_DOCKERFILE) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("python:3.11.11-slim-bookworm", "python:latest", "base image python:latest is not pinned"),
        ("registry.k8s.io/kubectl:v1.32.4", "registry.k8s.io/kubectl", "base image registry.k8s.io/kubectl is not"),
        ("ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm", "ARG PYTHON_IMAGE", "base image ${PYTHON_IMAGE} has no "
                                                                           "default"),
        ("USER 10001:10001", "USER app", "the image's last stage runs as 'app': end with a numeric non-root USER"),
        ("USER 10001:10001", "USER 0", "runs as '0'"),
        ("USER 10001:10001\n", "", "runs as 'root'"),
    ],
)
def test_each_dockerfile_rule_names_the_problem(old: str, new: str, expected: str) -> None:
    assert old in GOOD_DOCKERFILE
    problems = _dockerfile_problems(GOOD_DOCKERFILE.replace(old, new))
    assert len(problems) == 1 and expected in problems[0] and problems[0].startswith("x/Dockerfile:"), problems


def test_a_single_stage_dockerfile_is_a_problem() -> None:
    problems = _dockerfile_problems("FROM python:3.11.11-slim\nRUN pip install x\nUSER 10001\n")
    assert problems == ["x/Dockerfile: single-stage build: build tools and caches end up in the image "
                        "(build in one stage, copy the result into the next)"]


def test_a_user_set_in_an_earlier_stage_only_is_a_problem() -> None:
    text = "FROM python:3.11.11 AS build\nUSER 10001\nFROM python:3.11.11\nCOPY --from=build /a /a\n"
    assert any("runs as 'root'" in p for p in _dockerfile_problems(text))


def _application(values_object: dict[str, Any] | None, value_files: list[str]) -> Obj:
    helm: dict[str, Any] = {"valueFiles": value_files}
    if values_object is not None:
        helm["valuesObject"] = values_object
    body = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "demo", "namespace": "argocd"},
            "spec": {"sources": [{"repoURL": "https://charts.example.com", "chart": "demo",
                                  "targetRevision": "1.0.0", "helm": helm}]}}
    return Obj(body, Source(Path("clusters/demo"), rendered=True))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"image": {"repository": "ghcr.io/x/y", "tag": "1.2.3"}, "sidecar": {"tag": "v2"}}, []),
        ({"image": {"repository": "ghcr.io/x/y", "tag": None}}, []),  # the chart's appVersion
        ({"image": {"repository": "ghcr.io/x/y", "tag": ""}}, ["image.tag"]),
        ({"controller": {"images": [{"tag": "latest"}]}}, ["controller.images[0].tag"]),
    ],
)
def test_chart_value_images_are_pinned(tmp_path: Path, values: dict[str, Any], expected: list[str]) -> None:
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    from_file = [str(p) for p in policy_images.check_chart_values([_application(None, ["$values/values.yaml"])],
                                                                   tmp_path)]
    inline = [str(p) for p in policy_images.check_chart_values([_application(values, [])], tmp_path)]
    assert from_file == [f"clusters/demo/: Application/argocd/demo: chart demo: image {w} is not pinned "
                         "(empty or latest)" for w in expected]
    assert inline == from_file


def test_a_later_value_file_can_pin_what_an_earlier_leaves_open(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("image: {repository: ghcr.io/x/y, tag: ''}\n")
    (tmp_path / "cluster.yaml").write_text("image: {tag: 1.2.3}\n")
    app = _application(None, ["$values/base.yaml", "$values/cluster.yaml"])
    assert list(policy_images.check_chart_values([app], tmp_path)) == []


@pytest.mark.parametrize(("image", "problem"), [("ghcr.io/cloudnative-pg/postgresql:17.5", False),
                                                ("ghcr.io/cloudnative-pg/postgresql", True),
                                                ("ghcr.io/cloudnative-pg/postgresql:latest", True)])
def test_database_cluster_image_is_pinned(image: str, problem: bool) -> None:
    cluster = Obj({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
                   "metadata": {"name": "db", "namespace": "mlops"}, "spec": {"imageName": image}},
                  Source(Path("infra/postgres"), rendered=True))
    problems = [str(p) for p in policy_images.check_image_names(cluster)]
    assert problems == ([f"infra/postgres/: Cluster/mlops/db: imageName {image!r} is not pinned"] if problem else [])


def test_an_image_of_this_project_needs_a_dockerfile_that_builds_it(tmp_path: Path) -> None:
    """crossref.check_image, which the tests relied on for the images built here."""
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "Dockerfile").write_text("# builds ghcr.io/example/mlops-jobs\nFROM x:1\n")
    ctx = crossref.RepoContext(root=tmp_path, repo_urls=frozenset(), image_prefix="ghcr.io/example/",
                               known_images={}, metric_catalogue=frozenset())
    files = [Path("jobs/Dockerfile")]
    pod = Obj({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"}},
              Source(Path("apps/pod.yaml"), rendered=False))
    assert list(crossref.check_image(pod, "ghcr.io/example/mlops-jobs:1.0.0", ctx, files)) == []
    [problem] = crossref.check_image(pod, "ghcr.io/example/model-server:1.0.0", ctx, files)
    assert str(problem) == ("apps/pod.yaml: Pod/n/p: image 'ghcr.io/example/model-server' is built from this "
                            "repository, but no Dockerfile here builds it")
    [problem] = crossref.check_image(pod, "docker.io/library/busybox", ctx, files)
    assert "image 'docker.io/library/busybox' has no explicit tag" in str(problem)

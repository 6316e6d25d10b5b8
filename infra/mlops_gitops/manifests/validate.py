"""Run every check over the repository and collect the problems."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from mlops_gitops.manifests import (
    chartvalues,
    cluster_checks,
    crossref,
    drift_schedule,
    environment_checks,
    envset,
    modelset,
    policy_argocd,
    policy_images,
    policy_monitoring,
    policy_workflows,
)
from mlops_gitops.manifests.discover import load
from mlops_gitops.manifests.model import Problem
from mlops_gitops.manifests.schemas import SchemaValidator
from mlops_platform.metric_names import all_metric_names

ENV_CRD_SCHEMAS = "MLOPS_CRD_SCHEMAS"
ENV_KUBERNETES_VERSION = "MLOPS_KUBERNETES_VERSION"
ENV_REPO_URL = "MLOPS_REPO_URL"
DEFAULT_KUBERNETES_VERSION = "1.32"
DEFAULT_REPO_URL = "https://github.com/mlops-gitops/mlops-platform.git"
IMAGE_PREFIX = "ghcr.io/mlops-gitops/"
KNOWN_IMAGES = {"model-server": "serving/Dockerfile"}
"""Images built from this repository and their Dockerfiles. An image not listed here is accepted
when a Dockerfile sits in a folder of the image's name or mentions the image's repository."""


@dataclass(frozen=True)
class ValidateOptions:
    root: Path
    crd_schemas: Path | None
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    repo_urls: frozenset[str] = frozenset({crossref.normalize_url(DEFAULT_REPO_URL)})
    kubectl: str = "kubectl"

    @classmethod
    def from_env(cls, root: Path, crd_schemas: Path | None = None) -> ValidateOptions:
        """Options from the environment: ``MLOPS_CRD_SCHEMAS`` (default ``../shared/crd-schemas``
        beside the repository, when it exists), ``MLOPS_KUBERNETES_VERSION``, ``MLOPS_REPO_URL``."""
        root = root.resolve()
        if crd_schemas is None:
            env = os.environ.get(ENV_CRD_SCHEMAS)
            if env:
                crd_schemas = Path(env) if Path(env).is_absolute() else (root / env)
            elif (root.parent / "shared" / "crd-schemas").is_dir():
                crd_schemas = root.parent / "shared" / "crd-schemas"
        urls = {crossref.normalize_url(DEFAULT_REPO_URL)}
        if os.environ.get(ENV_REPO_URL):
            urls.add(crossref.normalize_url(os.environ[ENV_REPO_URL]))
        return cls(
            root=root,
            crd_schemas=crd_schemas.resolve() if crd_schemas else None,
            kubernetes_version=os.environ.get(ENV_KUBERNETES_VERSION, DEFAULT_KUBERNETES_VERSION),
            repo_urls=frozenset(urls),
            kubectl=shutil.which("kubectl") or "kubectl",
        )


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    objects: int = 0
    kustomizations: int = 0
    files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        verdict = "OK" if self.ok else f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        return (f"validate: {self.objects} objects from {self.kustomizations} kustomizations and "
                f"{self.files} manifest files: {verdict}")


def validate_repo(options: ValidateOptions) -> Report:
    loaded = load(options.root, options.kubectl)
    report = Report(problems=list(loaded.problems), objects=len(loaded.objects),
                    kustomizations=len(loaded.kustomizations), files=len(loaded.files))
    problems = report.problems
    if options.crd_schemas is None or not options.crd_schemas.is_dir():
        problems.append(Problem(str(options.crd_schemas or "(unset)"), "",
                                f"CRD schema folder not found; set {ENV_CRD_SCHEMAS}"))
    schemas = SchemaValidator(
        options.crd_schemas if options.crd_schemas and options.crd_schemas.is_dir() else None,
        options.kubernetes_version,
    )
    ctx = crossref.RepoContext(
        root=options.root, repo_urls=options.repo_urls, image_prefix=IMAGE_PREFIX,
        known_images=KNOWN_IMAGES, metric_catalogue=all_metric_names(),
    )
    grouped = crossref.by_source(loaded.objects)
    repo_index = crossref.Index(loaded.objects)
    docker = crossref.dockerfiles(options.root)

    for obj in loaded.objects:
        problems.extend(schemas.validate(obj))
        problems.extend(crossref.check_secret(obj))
        for image in sorted(set(crossref.images(obj.body.get("spec")))):
            problems.extend(crossref.check_image(obj, image, ctx, docker))
        for where, query in crossref.queries(obj):
            problems.extend(Problem.at(obj, m) for m in
                            crossref.check_metric_names(where, obj.ref(), query, ctx.metric_catalogue))
    for path, expr in crossref.dashboard_files(options.root):
        problems.extend(Problem(str(path), "dashboard", m) for m in
                        crossref.check_metric_names("a panel", "", expr, ctx.metric_catalogue))
    for objects in grouped.values():
        index = crossref.Index(objects)
        for rollout in index.of_kind("Rollout"):
            problems.extend(crossref.check_rollout(rollout, index, repo_index))
        problems.extend(crossref.check_selectors(index))
        problems.extend(crossref.check_istio(index, repo_index))
    problems.extend(crossref.check_argocd(loaded.objects, ctx, grouped))
    problems.extend(crossref.check_service_urls(loaded.objects))
    problems.extend(chartvalues.check_chart_values(loaded.objects, options.root))
    problems.extend(drift_schedule.check_drift_schedules(grouped))
    priority_classes = {o.name for o in repo_index.of_kind("PriorityClass")}
    for source, objects in grouped.items():
        bundle = source.path if source.rendered else None
        problems.extend(policy_argocd.check_bundle(objects, bundle))
        problems.extend(policy_workflows.check_bundle(objects, priority_classes))
        if policy_argocd.cluster_bundle(objects):
            problems.extend(policy_images.check_chart_values(objects, options.root))
        for obj in objects:
            problems.extend(policy_images.check_image_names(obj))
    problems.extend(policy_argocd.check_sync_option_reasons(options.root))
    clusters = [objects for objects in grouped.values() if policy_argocd.cluster_bundle(objects)]
    problems.extend(policy_monitoring.check_repo(loaded.objects, clusters, options.root))
    problems.extend(policy_images.check_dockerfiles(options.root, docker))
    problems.extend(modelset.check(options.root, loaded.objects))
    problems.extend(environment_checks.check_environments(options.root, loaded.objects))
    problems.extend(envset.check(options.root))
    problems.extend(cluster_checks.check_clusters(options.root, loaded.objects))
    problems.extend(crossref.check_unincluded(loaded.files, loaded.orphans, loaded.referenced,
                                              crossref.application_folders(loaded.objects, ctx)))
    report.problems = sorted(set(problems), key=_order)
    return report


def _order(problem: Problem) -> tuple[str, str, str]:
    return problem.source, problem.subject, problem.message



"""Policy of the app-of-apps: how every Argo CD Application, ApplicationSet and AppProject must be set.

Checked per bundle (one rendered kustomization, e.g. ``clusters/<name>/``):

- every Application, ApplicationSet and AppProject has an integer ``argocd.argoproj.io/sync-wave``,
  and the AppProjects come before every Application;
- every Application syncs automatically (``prune`` and ``selfHeal``) with retries backing off by a
  factor of at least 2;
- no Application (nor ApplicationSet template) creates or labels a namespace: ``infra/namespaces/``
  owns them, two owners would fight over their labels (``istio-injection``);
- Helm charts are pinned to a version (``X.Y.Z``), from a repository their project allows (their
  value files: :mod:`mlops_gitops.manifests.chartvalues`);
- AppProjects name their source repositories and destination namespaces (no ``*``);
- the root Application syncs its own cluster folder, is labelled ``mlops.io/bootstrap: "true"`` and
  has no finalizer (deleting it must not delete the platform).

And, on the files: a non-obvious sync option carries a comment saying why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mlops_gitops.manifests.model import Obj, Problem

WAVE = "argocd.argoproj.io/sync-wave"
BOOTSTRAP_LABEL = "mlops.io/bootstrap"
ROOT_APPLICATION = "root"
MIN_BACKOFF_FACTOR = 2
CHART_VERSION = re.compile(r"^v?\d+\.\d+\.\d+$")
NON_OBVIOUS_SYNC_OPTIONS = ("ServerSideApply", "SkipDryRunOnMissingResource", "CreateNamespace=false",
                            "RespectIgnoreDifferences", "ApplyOutOfSyncOnly")
"""Sync options whose reason a reader cannot guess: each needs a comment on its line or the line above."""
SYNC_OPTION_FOLDERS = ("apps", "clusters")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _sources(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return ([_dict(spec["source"])] if spec.get("source") else []) + [_dict(s) for s in _list(spec.get("sources"))]


def _wave(obj: Obj) -> int | None:
    value = _dict(obj.metadata.get("annotations")).get(WAVE)
    try:
        return int(str(value))
    except ValueError:
        return None


def _app_specs(objects: Iterable[Obj]) -> Iterator[tuple[Obj, dict[str, Any]]]:
    """Each Application's spec, and each ApplicationSet's template spec."""
    for obj in objects:
        if obj.group != "argoproj.io":
            continue
        if obj.kind == "Application":
            yield obj, obj.spec
        elif obj.kind == "ApplicationSet":
            yield obj, _dict(_dict(obj.spec.get("template")).get("spec"))


def check_waves(objects: list[Obj]) -> Iterator[Problem]:
    waved: list[tuple[Obj, int]] = []
    for obj in objects:
        if obj.group != "argoproj.io" or obj.kind not in ("Application", "ApplicationSet", "AppProject"):
            continue
        wave = _wave(obj)
        if wave is None:
            yield Problem.at(obj, f"no integer {WAVE} annotation: every Argo CD object says when it syncs")
        else:
            waved.append((obj, wave))
    applications = [wave for obj, wave in waved if obj.kind == "Application"]
    for project, wave in ((o, w) for o, w in waved if o.kind == "AppProject"):
        if applications and wave >= min(applications):
            yield Problem.at(project, f"sync wave {wave} is not before every Application's "
                                      f"(the first syncs in wave {min(applications)})")


def check_sync_policy(objects: list[Obj]) -> Iterator[Problem]:
    for obj, spec in _app_specs(objects):
        policy = _dict(spec.get("syncPolicy"))
        if obj.kind == "Application":
            automated = _dict(policy.get("automated"))
            if automated.get("prune") is not True or automated.get("selfHeal") is not True:
                yield Problem.at(obj, "syncPolicy.automated must prune and selfHeal: Git is the only source "
                                      "of truth")
            factor = _dict(_dict(policy.get("retry")).get("backoff")).get("factor")
            if not isinstance(factor, int) or factor < MIN_BACKOFF_FACTOR:
                yield Problem.at(obj, f"syncPolicy.retry.backoff.factor must be at least {MIN_BACKOFF_FACTOR} "
                                      f"(is {factor!r})")
        if "managedNamespaceMetadata" in policy:
            yield Problem.at(obj, "syncPolicy.managedNamespaceMetadata: namespaces and their labels belong to "
                                  "infra/namespaces/ alone")
        if "CreateNamespace=true" in _list(policy.get("syncOptions")):
            yield Problem.at(obj, "CreateNamespace=true: namespaces belong to infra/namespaces/ alone")


def cluster_bundle(objects: list[Obj]) -> bool:
    """A cluster's app-of-apps (it holds the root Application): there value file paths are resolved;
    apps/ alone holds placeholders (clusters/CLUSTER/values/...)."""
    return any(o.kind == "Application" and o.group == "argoproj.io" and o.name == ROOT_APPLICATION
               for o in objects)


def check_charts(objects: list[Obj]) -> Iterator[Problem]:
    """Charts pinned, from a repository their project allows. (Their value files — read from this
    repository, existing — are chartvalues.app_values'.)"""
    projects = {o.name: o for o in objects if o.kind == "AppProject" and o.group == "argoproj.io"}
    for obj, spec in _app_specs(objects):
        allowed = _list(projects[spec["project"]].spec.get("sourceRepos")) if spec.get("project") in projects \
            else None
        for source in _sources(spec):
            if "chart" not in source:
                continue
            chart = f"chart {source['chart']}"
            revision = str(source.get("targetRevision", ""))
            if not CHART_VERSION.match(revision):
                yield Problem.at(obj, f"{chart} is not pinned to a version (targetRevision {revision!r})")
            if allowed is not None and source.get("repoURL") not in allowed:
                yield Problem.at(obj, f"{chart}: repository {source.get('repoURL')!r} is not among the source "
                                      f"repositories of AppProject {spec['project']!r}")


def check_projects(objects: list[Obj]) -> Iterator[Problem]:
    for project in (o for o in objects if o.kind == "AppProject" and o.group == "argoproj.io"):
        if "*" in _list(project.spec.get("sourceRepos")):
            yield Problem.at(project, "sourceRepos allows every repository ('*')")
        for destination in map(_dict, _list(project.spec.get("destinations"))):
            if destination.get("namespace") == "*":
                yield Problem.at(project, "destinations allow every namespace ('*')")


def check_root(objects: list[Obj], bundle: Path | None) -> Iterator[Problem]:
    """The root Application of a cluster folder (``bundle``, e.g. ``clusters/kind``)."""
    for app in (o for o in objects if o.kind == "Application" and o.name == ROOT_APPLICATION):
        path = _dict(app.spec.get("source")).get("path")
        if bundle is not None and path != bundle.as_posix():
            yield Problem.at(app, f"the root Application syncs {path!r}, not its own cluster folder "
                                  f"{bundle.as_posix()!r}")
        if _dict(app.metadata.get("labels")).get(BOOTSTRAP_LABEL) != "true":
            yield Problem.at(app, f"the root Application is applied by hand: label it {BOOTSTRAP_LABEL}: \"true\"")
        if app.metadata.get("finalizers"):
            yield Problem.at(app, "the root Application has finalizers: deleting it would delete the platform")


def check_sync_option_reasons(root: Path, folders: Iterable[str] = SYNC_OPTION_FOLDERS) -> Iterator[Problem]:
    for folder in folders:
        for path in sorted((root / folder).rglob("*.yaml")):
            lines = path.read_text(encoding="utf-8").splitlines()
            for i, line in enumerate(lines):
                option = line.strip().removeprefix("- ").strip("\"'")
                if not option.startswith(NON_OBVIOUS_SYNC_OPTIONS):
                    continue
                if "#" in line or (i > 0 and lines[i - 1].strip().startswith("#")):
                    continue
                yield Problem(f"{path.relative_to(root)}:{i + 1}", "",
                              f"sync option {option} without a comment saying why")


def check_bundle(objects: list[Obj], bundle: Path | None) -> Iterator[Problem]:
    """Every rule of this module that reads objects, over one bundle (``bundle``: its folder, when rendered)."""
    if not any(o.group == "argoproj.io" for o in objects):
        return
    yield from check_waves(objects)
    yield from check_sync_policy(objects)
    yield from check_charts(objects)
    yield from check_projects(objects)
    yield from check_root(objects, bundle)

"""Chart values that only act under a condition: each rule says when a key does nothing.

A Helm chart ignores a value its templates never read, and many read a value only behind another one
(`replicaCount` only while autoscaling is off). Such a key looks like configuration and does nothing,
so every Argo CD Application that installs a chart has its value files merged here, in Argo CD's
order, and each rule of that chart reports the keys that would be silent no-ops.

Each rule was read from the chart's templates at one version (``read_at``). An Application that pins
another version is reported too, so that a chart bump re-reads the templates the rule depends on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlops_gitops.manifests.model import Obj, Problem

Values = Mapping[str, Any]
_UNSET = object()


def get(values: Values, dotted: str, default: Any = _UNSET) -> Any:
    """The value at ``a.b.c``, or ``default`` when a key on the way is absent."""
    node: Any = values
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return node


def is_set(values: Values, dotted: str) -> bool:
    return get(values, dotted) is not _UNSET


def merge(base: Values, override: Values) -> dict[str, Any]:
    """Helm's merge of value files: maps merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class Rule:
    chart: str
    read_at: str
    """The chart version whose templates this rule was read from."""
    check: Callable[[Values], Iterator[str]]


def _replicas_behind_autoscaling(replicas: str, enabled: str, minimum: str) -> Callable[[Values], Iterator[str]]:
    def check(values: Values) -> Iterator[str]:
        if is_set(values, replicas) and get(values, enabled, True) is not False:
            yield (f"{replicas} has no effect: the chart sets the Deployment's replicas only when {enabled} "
                   f"is false (its default is true, an autoscaler owns the count); set {minimum}, or turn "
                   f"{enabled} off")

    return check


def _istiod(values: Values) -> Iterator[str]:
    # istiod copies everything under `pilot` to the top level before rendering (zzy_descope_legacy.yaml).
    pilot = get(values, "pilot", {})
    flat = merge(values, pilot) if isinstance(pilot, Mapping) else values
    yield from _replicas_behind_autoscaling("replicaCount", "autoscaleEnabled", "autoscaleMin")(flat)


_MINIO_JOB_INPUTS = ("buckets", "users", "policies", "customCommands", "svcaccts")
_MINIO_JOB_KEYS = ("mcImage", "postJob", "makeBucketJob", "makeUserJob", "makePolicyJob",
                   "makeServiceAccountJob", "customCommandJob")


def _minio(values: Values) -> Iterator[str]:
    # templates/post-job.yaml renders only when one of the inputs is non-empty; the chart's own
    # default `users` holds a console user, so leaving `users` unset keeps the job.
    defaults = {"users": ["console"]}
    if any(get(values, key, defaults.get(key)) for key in _MINIO_JOB_INPUTS):
        return
    for key in _MINIO_JOB_KEYS:
        if is_set(values, key):
            yield (f"{key} has no effect: the chart's post-install job renders only when one of "
                   f"{', '.join(_MINIO_JOB_INPUTS)} is set, and all are empty here")


def _argo_workflows(values: Values) -> Iterator[str]:
    # controller.workflowNamespaces only lists where the chart creates the workflow ServiceAccount and
    # Roles (templates/controller/workflow-*.yaml, agent-*, artifact-gc-*); it never limits what the
    # controller watches.
    if not is_set(values, "controller.workflowNamespaces"):
        return
    creates = any(get(values, key, default) for key, default in (
        ("workflow.serviceAccount.create", False), ("workflow.rbac.create", True),
        ("workflow.rbac.agentPermissions", False), ("workflow.rbac.artifactGC", False)))
    if get(values, "singleNamespace", False) or not creates:
        yield ("controller.workflowNamespaces has no effect: the chart uses it only to create workflow "
               "ServiceAccounts and Roles (workflow.serviceAccount.create / workflow.rbac.*), which are off "
               "here, and it never restricts the namespaces the controller watches")


RULES: tuple[Rule, ...] = (
    Rule("gateway", "1.30.3", _replicas_behind_autoscaling("replicaCount", "autoscaling.enabled",
                                                           "autoscaling.minReplicas")),
    Rule("istiod", "1.30.3", _istiod),
    Rule("minio", "5.4.0", _minio),
    Rule("argo-workflows", "0.47.5", _argo_workflows),
)


def _sources(app: Obj) -> list[dict[str, Any]]:
    spec = app.spec
    sources = [spec["source"]] if isinstance(spec.get("source"), dict) else []
    sources += [s for s in spec.get("sources") or [] if isinstance(s, dict)]
    return sources


def _optional(ref: str) -> bool:
    """A cluster's own value file (``$values/clusters/NAME/values/...``) may be absent: the cluster
    changes nothing in that chart. The shared value files must exist."""
    return ref.removeprefix("$values/").split("/")[:1] == ["clusters"]


def app_values(app: Obj, root: Path) -> Iterator[tuple[str, str, dict[str, Any], list[str]]]:
    """(chart, version, merged values, problems) of each chart source of an Application: its
    ``$values/`` files read from this repository in order, then inline ``values``/``valuesObject``."""
    for source in _sources(app):
        chart = source.get("chart")
        if not isinstance(chart, str):
            continue
        helm: dict[str, Any] = source["helm"] if isinstance(source.get("helm"), dict) else {}
        merged: dict[str, Any] = {}
        problems: list[str] = []
        for ref in helm.get("valueFiles") or []:
            ref = str(ref)
            if not ref.startswith("$values/"):
                problems.append(f"value file {ref!r} of chart {chart} is not read from this repository ($values/)")
                continue
            path = root / ref.removeprefix("$values/")
            if helm.get("ignoreMissingValueFiles") is True and _optional(ref) and not path.exists():
                continue  # a cluster without overrides for this chart
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                problems.append(f"value file {ref!r} of chart {chart} cannot be read: {exc}")
                continue
            if not isinstance(loaded, dict):
                problems.append(f"value file {ref!r} of chart {chart} is not a map")
                continue
            merged = merge(merged, loaded)
        inline = helm.get("values")
        if isinstance(inline, str) and inline.strip():
            parsed = yaml.safe_load(inline)
            if isinstance(parsed, dict):
                merged = merge(merged, parsed)
        if isinstance(helm.get("valuesObject"), dict):
            merged = merge(merged, helm["valuesObject"])
        yield chart, str(source.get("targetRevision", "")), merged, problems


def check_chart_values(objects: Iterable[Obj], root: Path, rules: Iterable[Rule] = RULES) -> Iterator[Problem]:
    by_chart = {rule.chart: rule for rule in rules}
    for app in objects:
        # apps/ alone is a template (its value files name clusters/CLUSTER/); a cluster's render is real.
        if (app.kind != "Application" or app.group != "argoproj.io" or not app.source.rendered
                or app.source.path.parts[:1] != ("clusters",)):
            continue
        for chart, version, values, problems in app_values(app, root):
            for message in problems:
                yield Problem.at(app, message)
            rule = by_chart.get(chart)
            if rule is None:
                continue
            if version != rule.read_at:
                yield Problem.at(app, f"chart {chart} {version}: the values rule for it was read from the chart "
                                      f"at {rule.read_at}; re-read its templates and update "
                                      f"mlops_gitops/manifests/chartvalues.py")
            for message in rule.check(values):
                yield Problem.at(app, f"chart {chart} {version}: {message}")

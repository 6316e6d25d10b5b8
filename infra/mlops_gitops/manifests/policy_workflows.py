"""Policy of the Argo Workflows objects: every WorkflowTemplate and CronWorkflow is bounded and attributed.

Checked per bundle (one rendered kustomization, e.g. ``workflows/manifests/``):

- a WorkflowTemplate runs as a ServiceAccount of its bundle, with a PriorityClass the repository
  creates, a deadline, a TTL after success, pod garbage collection, a parallelism limit, and the
  attribution labels (team, model, trigger) on both the workflow and its pods;
- each container step retries with a backoff, has its own deadline, resource requests and limits, a
  read-only root filesystem, and runs the project's jobs image (``<registry>/mlops-jobs:<tag>``);
- a CronWorkflow forbids overlapping runs, has a schedule in UTC, and passes its template only
  parameters the template declares, among them every parameter without a default.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from mlops_gitops.manifests.model import Obj, Problem

ATTRIBUTION_LABELS = ("mlops.io/team", "mlops.io/model", "mlops.io/trigger")
JOBS_IMAGE = "mlops-jobs"
"""The image every step runs (the ``mlops`` CLI), from whichever registry the cluster pulls it."""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _of_kind(objects: Iterable[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o.kind == kind and o.group == "argoproj.io"]


def check_template(template: Obj, service_accounts: set[str], priority_classes: set[str]) -> Iterator[Problem]:
    spec = template.spec
    if spec.get("serviceAccountName") not in service_accounts:
        yield Problem.at(template, f"serviceAccountName {spec.get('serviceAccountName')!r} is no ServiceAccount "
                                   "of its manifests")
    if spec.get("podPriorityClassName") not in priority_classes:
        yield Problem.at(template, f"podPriorityClassName {spec.get('podPriorityClassName')!r} is no "
                                   "PriorityClass of this repository")
    if not _positive(spec.get("activeDeadlineSeconds")):
        yield Problem.at(template, "no activeDeadlineSeconds: a stuck workflow would run forever")
    if not _positive(_dict(spec.get("ttlStrategy")).get("secondsAfterSuccess")) or \
            not _dict(spec.get("podGC")).get("strategy"):
        yield Problem.at(template, "no ttlStrategy.secondsAfterSuccess or podGC.strategy: finished workflows "
                                   "and pods would pile up")
    if not _positive(spec.get("parallelism")):
        yield Problem.at(template, "no parallelism limit")
    labels_from = _dict(_dict(spec.get("workflowMetadata")).get("labelsFrom"))
    pod_labels = _dict(_dict(spec.get("podMetadata")).get("labels"))
    for label in ATTRIBUTION_LABELS:
        if label not in labels_from or label not in pod_labels:
            yield Problem.at(template, f"attribution label {label} missing from workflowMetadata.labelsFrom or "
                                       "podMetadata.labels")
    defaults = _dict(spec.get("templateDefaults"))
    for node in map(_dict, _list(spec.get("templates"))):
        container = _dict(node.get("container"))
        if not container:
            continue
        step = f"step {node.get('name')!r}"
        retry = _dict(node.get("retryStrategy") or defaults.get("retryStrategy"))
        if not _dict(retry.get("backoff")).get("duration"):
            yield Problem.at(template, f"{step}: no retryStrategy with a backoff duration")
        if not _positive(node.get("activeDeadlineSeconds")):
            yield Problem.at(template, f"{step}: no activeDeadlineSeconds")
        resources = _dict(container.get("resources"))
        if not resources.get("requests") or not resources.get("limits"):
            yield Problem.at(template, f"{step}: no resource requests and limits")
        if _dict(container.get("securityContext")).get("readOnlyRootFilesystem") is not True:
            yield Problem.at(template, f"{step}: the root filesystem is not read-only")
        image = str(container.get("image", ""))
        if image.split("@")[0].rsplit(":", 1)[0].rsplit("/", 1)[-1] != JOBS_IMAGE:
            yield Problem.at(template, f"{step}: image {image!r} is not the jobs image ({JOBS_IMAGE})")


def _declared(template: Obj) -> dict[str, dict[str, Any]]:
    parameters = _list(_dict(template.spec.get("arguments")).get("parameters"))
    return {str(p.get("name")): p for p in map(_dict, parameters)}


def check_cron(cron: Obj, templates: dict[str, Obj]) -> Iterator[Problem]:
    spec = cron.spec
    if spec.get("concurrencyPolicy") != "Forbid":
        yield Problem.at(cron, "concurrencyPolicy must be Forbid: two runs of one job would overlap")
    if not _list(spec.get("schedules")) and not spec.get("schedule"):
        yield Problem.at(cron, "no schedule")
    if spec.get("timezone") != "UTC":
        yield Problem.at(cron, f"timezone {spec.get('timezone')!r}: schedules are written in UTC")
    workflow = _dict(spec.get("workflowSpec"))
    ref = str(_dict(workflow.get("workflowTemplateRef")).get("name", ""))
    template = templates.get(ref)
    if template is None:
        return  # the reference itself: crossref and the schemas
    declared = _declared(template)
    given = {str(_dict(p).get("name")) for p in _list(_dict(workflow.get("arguments")).get("parameters"))}
    for name in sorted(given - set(declared)):
        yield Problem.at(cron, f"passes parameter {name!r}, which WorkflowTemplate {ref!r} does not declare")
    required = {n for n, p in declared.items() if "value" not in p and "valueFrom" not in p}
    for name in sorted(required - given):
        yield Problem.at(cron, f"does not pass parameter {name!r}, which WorkflowTemplate {ref!r} requires")


def check_bundle(objects: list[Obj], priority_classes: set[str]) -> Iterator[Problem]:
    """Every rule of this module over one bundle; ``priority_classes``: those the repository creates."""
    templates = {t.name: t for t in _of_kind(objects, "WorkflowTemplate")}
    service_accounts = {o.name for o in objects if o.kind == "ServiceAccount" and o.group == ""}
    for template in templates.values():
        yield from check_template(template, service_accounts, priority_classes)
    for cron in _of_kind(objects, "CronWorkflow"):
        yield from check_cron(cron, templates)

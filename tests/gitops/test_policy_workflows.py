"""The validator's Argo Workflows policy (mlops_gitops.manifests.policy_workflows): each rule passes a
good bundle and names the problem in a bad one."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlops_gitops.manifests import Obj, Source, policy_workflows

PRIORITY_CLASSES = {"mlops-batch"}
LABELS = dict.fromkeys(policy_workflows.ATTRIBUTION_LABELS, "x")


def good_bundle() -> list[dict[str, Any]]:
    step = {
        "name": "run", "activeDeadlineSeconds": 600,
        "container": {"image": "ghcr.io/example/mlops-jobs:1.0.0", "command": ["mlops"], "args": ["--help"],
                      "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "1Gi"}},
                      "securityContext": {"readOnlyRootFilesystem": True}},
    }
    template = {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate",
        "metadata": {"name": "job", "namespace": "mlops"},
        "spec": {
            "serviceAccountName": "runner", "podPriorityClassName": "mlops-batch", "activeDeadlineSeconds": 3600,
            "ttlStrategy": {"secondsAfterSuccess": 600}, "podGC": {"strategy": "OnPodSuccess"}, "parallelism": 2,
            "workflowMetadata": {"labelsFrom": {k: {"expression": "x"} for k in LABELS}},
            "podMetadata": {"labels": dict(LABELS)},
            "templateDefaults": {"retryStrategy": {"limit": 2, "backoff": {"duration": "30s"}}},
            "arguments": {"parameters": [{"name": "model"}, {"name": "trigger", "value": "schedule"}]},
            "entrypoint": "run", "templates": [step, {"name": "dag", "dag": {"tasks": []}}],
        },
    }
    cron = {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow",
        "metadata": {"name": "nightly", "namespace": "mlops"},
        "spec": {"schedules": ["0 3 * * *"], "timezone": "UTC", "concurrencyPolicy": "Forbid",
                 "workflowSpec": {"workflowTemplateRef": {"name": "job"},
                                  "arguments": {"parameters": [{"name": "model", "value": "wine"}]}}},
    }
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner", "namespace": "mlops"}}
    return [template, cron, account]


def _problems(docs: list[dict[str, Any]]) -> list[str]:
    objects = [Obj(doc, Source(Path("workflows/manifests"), rendered=True)) for doc in docs]
    return [str(p) for p in policy_workflows.check_bundle(objects, PRIORITY_CLASSES)]


def _spec(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind]
    spec: dict[str, Any] = doc["spec"]
    return spec


def _step(docs: list[dict[str, Any]]) -> dict[str, Any]:
    step: dict[str, Any] = _spec(docs, "WorkflowTemplate")["templates"][0]
    return step


def _unknown_account(docs: list[dict[str, Any]]) -> None:
    _spec(docs, "WorkflowTemplate")["serviceAccountName"] = "default"


def _unknown_priority(docs: list[dict[str, Any]]) -> None:
    _spec(docs, "WorkflowTemplate")["podPriorityClassName"] = "urgent"


def _no_deadline(docs: list[dict[str, Any]]) -> None:
    del _spec(docs, "WorkflowTemplate")["activeDeadlineSeconds"]


def _no_ttl(docs: list[dict[str, Any]]) -> None:
    del _spec(docs, "WorkflowTemplate")["ttlStrategy"]


def _unbounded(docs: list[dict[str, Any]]) -> None:
    _spec(docs, "WorkflowTemplate")["parallelism"] = 0


def _unattributed_pods(docs: list[dict[str, Any]]) -> None:
    del _spec(docs, "WorkflowTemplate")["podMetadata"]["labels"]["mlops.io/team"]


def _no_retries(docs: list[dict[str, Any]]) -> None:
    del _spec(docs, "WorkflowTemplate")["templateDefaults"]


def _step_without_deadline(docs: list[dict[str, Any]]) -> None:
    del _step(docs)["activeDeadlineSeconds"]


def _step_without_limits(docs: list[dict[str, Any]]) -> None:
    del _step(docs)["container"]["resources"]["limits"]


def _writable_root(docs: list[dict[str, Any]]) -> None:
    _step(docs)["container"]["securityContext"] = {}


def _other_image(docs: list[dict[str, Any]]) -> None:
    _step(docs)["container"]["image"] = "python:3.11-slim"


def _overlapping_runs(docs: list[dict[str, Any]]) -> None:
    _spec(docs, "CronWorkflow")["concurrencyPolicy"] = "Allow"


def _local_time(docs: list[dict[str, Any]]) -> None:
    _spec(docs, "CronWorkflow")["timezone"] = "Europe/Paris"


def _undeclared_parameter(docs: list[dict[str, Any]]) -> None:
    _spec(docs, "CronWorkflow")["workflowSpec"]["arguments"]["parameters"].append({"name": "modle", "value": "x"})


def _required_parameter_missing(docs: list[dict[str, Any]]) -> None:
    _spec(docs, "CronWorkflow")["workflowSpec"]["arguments"]["parameters"] = []


def test_a_good_bundle_has_no_problem() -> None:
    assert _problems(good_bundle()) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_unknown_account, "WorkflowTemplate/mlops/job: serviceAccountName 'default' is no ServiceAccount"),
        (_unknown_priority, "podPriorityClassName 'urgent' is no PriorityClass of this repository"),
        (_no_deadline, "WorkflowTemplate/mlops/job: no activeDeadlineSeconds"),
        (_no_ttl, "no ttlStrategy.secondsAfterSuccess or podGC.strategy"),
        (_unbounded, "no parallelism limit"),
        (_unattributed_pods, "attribution label mlops.io/team missing"),
        (_no_retries, "step 'run': no retryStrategy with a backoff duration"),
        (_step_without_deadline, "step 'run': no activeDeadlineSeconds"),
        (_step_without_limits, "step 'run': no resource requests and limits"),
        (_writable_root, "step 'run': the root filesystem is not read-only"),
        (_other_image, "step 'run': image 'python:3.11-slim' is not the jobs image (mlops-jobs)"),
        (_overlapping_runs, "CronWorkflow/mlops/nightly: concurrencyPolicy must be Forbid"),
        (_local_time, "CronWorkflow/mlops/nightly: timezone 'Europe/Paris'"),
        (_undeclared_parameter, "passes parameter 'modle', which WorkflowTemplate 'job' does not declare"),
        (_required_parameter_missing, "does not pass parameter 'model', which WorkflowTemplate 'job' requires"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_each_rule_names_the_problem(mutate: Callable[[list[dict[str, Any]]], None], expected: str) -> None:
    docs = copy.deepcopy(good_bundle())
    mutate(docs)
    problems = _problems(docs)
    assert len(problems) == 1 and expected in problems[0], problems

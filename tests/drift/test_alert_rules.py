"""The PrometheusRules under infra/monitoring/rules: conventions, CRD schema. (promtool check and unit
tests of alert-rules.test.yaml: hack/verify-promtool.sh.)"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.project import REPO

from mlops_gitops.manifests.promql import metric_names
from mlops_platform.metric_names import all_metric_names

RULES = REPO / "infra" / "monitoring" / "rules"
MANIFESTS = sorted(RULES.glob("prometheusrule-*.yaml"))
README_URL = "https://github.com/mlops-gitops/mlops-platform/blob/main/README.md#"
EXPECTED_ALERTS = {
    "MlopsFeatureDrift",
    "MlopsPredictionDrift",
    "MlopsDriftCheckStale",
    "MlopsDriftInsufficientData",
    "MlopsDriftCheckNeverSucceeded",
    "MlopsBatchJobFailed",
    "MlopsServingErrorRatioHigh",
    "MlopsServingLatencyHigh",
    "MlopsServingModelNotReady",
    "MlopsRolloutAborted",
    "MlopsRolloutPausedTooLong",
    "MlopsWorkflowFailed",
}


def _alerts() -> list[dict[str, Any]]:
    return [
        rule
        for manifest in MANIFESTS
        for group in yaml.safe_load(manifest.read_text())["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    alerts = _alerts()
    assert {a["alert"] for a in alerts} == EXPECTED_ALERTS
    for alert in alerts:
        assert alert["labels"]["severity"] in ("critical", "warning"), alert["alert"]
        annotations = alert["annotations"]
        assert annotations["summary"] and annotations["description"], alert["alert"]
        assert annotations["runbook_url"] == README_URL + alert["alert"].lower()


def test_rules_query_only_contract_metrics() -> None:
    known = all_metric_names()
    for alert in _alerts():
        used = metric_names(alert["expr"])
        assert used, alert["alert"]
        assert used <= known, f"{alert['alert']}: unknown metric(s) {sorted(used - known)}"


def test_kustomization_lists_every_rule_file() -> None:
    kustomization = yaml.safe_load((RULES / "kustomization.yaml").read_text())
    assert kustomization["resources"] == sorted(p.name for p in MANIFESTS)


def test_rules_match_the_prometheusrule_crd_schema() -> None:
    import jsonschema

    schemas = Path(os.environ.get("MLOPS_CRD_SCHEMAS", REPO.parent / "shared" / "crd-schemas"))
    schema_file = schemas / "monitoring.coreos.com" / "prometheusrule_v1.json"
    if not schema_file.is_file():
        pytest.skip(f"no CRD schema at {schema_file} (set MLOPS_CRD_SCHEMAS)")
    # No check_schema: a pattern of the CRD uses Go's inline (?i) flag, which Python's re rejects.
    validator = jsonschema.Draft7Validator(json.loads(schema_file.read_text()))
    for manifest in MANIFESTS:
        document = yaml.safe_load(manifest.read_text())
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
        assert not errors, f"{manifest.name}: {errors}"

"""The drift-check WorkflowTemplate as Argo would run it: rendered steps, real services.

A real model server (production's settings: its object store from the rendered production
overlay) writes the prediction log of shifted traffic to SeaweedFS S3. The rendered `drift` step of
the `drift-check` template then runs with exactly its pod's command and environment (the
workflow-env ConfigMap, the mlops-s3 Secret's keys with test values), only the cluster's service
addresses mapped to loopback: it must find that log (MLOPS_STORE_URI), exit 10 and push its
figures; the `outcome` step accepts 10, and the `retrain` step submits the `train` template
through the Argo Server API, whose request body is checked against the argo-workflows SDK model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.argoserver import fake_argo_server, submit_request_model
from support.podexec import render
from support.project import REPO, EmbeddedStore, base_env
from support.seaweedfs import seaweedfs_s3

from mlops_platform import metric_names as mn

pytestmark = pytest.mark.integration

MODEL = "wine-classifier"
KIND_WORKFLOWS = REPO / "clusters" / "kind" / "workflow-templates"
PRODUCTION = REPO / "serving" / "manifests" / "models" / MODEL / "production"
TOKEN = "pod-service-account-token"
SHIFTED = ("alcohol", "proline", "color_intensity")


def _served_store() -> str:
    """MLOPS_STORE_URI of the production model servers, from their rendered ConfigMap."""
    rendered = render(PRODUCTION)
    [config] = [c for c in rendered.of_kind("ConfigMap") if "MLOPS_STORE_URI" in (c.get("data") or {})]
    return str(config["data"]["MLOPS_STORE_URI"])


def test_rendered_drift_check_reads_the_served_log_exits_10_and_submits_train(
    trained_store: EmbeddedStore, tmp_path: Path
) -> None:
    from support.drift import wine_sample
    from support.prometheus import pushgateway_server
    from support.serving import start_server

    from mlops_platform.registry import Registry
    from mlops_platform.settings import PlatformSettings

    # A registry of our own (the session's store stays untouched) where v1 runs in production.
    home = tmp_path / "registry"
    shutil.copytree(trained_store.home, home)
    Registry(PlatformSettings(MLOPS_HOME=str(home))).set_alias(MODEL, "production", 1)
    tracking_uri = f"sqlite:///{home}/mlflow.db"

    store = _served_store()
    bucket = store.removeprefix("s3://").split("/", 1)[0]
    with seaweedfs_s3(tmp_path / "s3") as s3, pushgateway_server(tmp_path / "pgw") as gateway, \
            fake_argo_server(TOKEN) as argo:
        s3.make_bucket(bucket)
        server = start_server(tmp_path, {
            **base_env(MLOPS_HOME=str(home)), **s3.env(), "MLOPS_STORE_URI": store,
            "MLOPS_SERVING_MODELS": f"{MODEL}:1", "MLOPS_SERVING_AUTH": "off",
            "MLOPS_SERVING_PREDLOG_FLUSH_INTERVAL_S": "0.2", "MLOPS_SERVING_PREDLOG_SAMPLE_RATE": "1",
        })
        try:
            traffic = wine_sample(1200, seed=21, shift=True)
            names = [c for c in traffic.columns if c != "target"]
            for start in range(0, len(traffic), 100):
                rows = traffic[names].iloc[start : start + 100].to_numpy().tolist()
                assert server.post(f"/models/{MODEL}/predict", json={"features": rows}).status_code == 200
        finally:
            server.stop()
        assert server.stopped_cleanly()

        rendered = render(KIND_WORKFLOWS)
        secrets = {"mlops-s3": {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}}
        services = {
            "http://mlflow.mlops.svc.cluster.local:5000": tracking_uri,
            "http://minio.mlops.svc.cluster.local:9000": s3.endpoint_url,
            "http://prometheus-pushgateway.monitoring.svc.cluster.local:9091": gateway.url,
            "/tmp": tmp_path / "pod-tmp",
        }
        (tmp_path / "pod-tmp").mkdir()
        drift = rendered.workflow_step("drift-check", "drift", parameters={"model": MODEL}, secrets=secrets)
        assert drift.argv == ["mlops", "drift", MODEL, "--alias", "production", "--last", "1h"]
        result = drift.with_overrides(services).run(cwd=tmp_path)
        assert result.returncode == 10, result.stdout + result.stderr
        assert result.stdout.startswith(f"{MODEL} v1: DRIFT  (1,200 rows"), result.stdout
        status = {line.split()[0]: line.split()[-1] for line in result.stdout.splitlines()[1:] if " PSI " in line}
        assert {f for f, s in status.items() if s == "drift"} >= set(SHIFTED), result.stdout
        pushed = gateway.metrics_text()
        series = f'{{instance="",job="{mn.DRIFT_PUSH_JOB}",model="{MODEL}",version="1"}}'
        assert f"{mn.DRIFT_STATUS.name}{series} 2" in pushed

        outcome = rendered.workflow_step("drift-check", "outcome", parameters={"model": MODEL},
                                         inputs={"exit-code": "10"}, secrets=secrets)
        assert outcome.with_overrides({"/tmp": tmp_path / "pod-tmp"}).run(cwd=tmp_path).returncode == 0

        token_file = tmp_path / "sa-token"
        token_file.write_text(TOKEN)
        retrain = rendered.workflow_step("drift-check", "retrain", parameters={"model": MODEL}, secrets=secrets)
        submitted = retrain.with_overrides({
            "http://argo-workflows-server.argo.svc.cluster.local:2746": argo.url,
            "/var/run/secrets/kubernetes.io/serviceaccount/token": token_file,
            "/tmp": tmp_path / "pod-tmp",
        }).run(cwd=tmp_path, timeout=60)
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        [request] = [r for r in argo.requests if r["method"] == "POST"]
        assert request["path"] == "/api/v1/workflows/mlops/submit"
        body = submit_request_model(request["body"])
        assert body.resource_kind == "WorkflowTemplate" and body.resource_name == "train"
        assert body.namespace == "mlops"
        assert body.submit_options.parameters == [
            f"model={MODEL}", "trigger=drift", "team=ml-platform", "promote-to=staging"
        ]

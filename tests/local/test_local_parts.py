"""The local platform's parts on their own: the pull-request host's merge, the Istio translation of the
rendered objects, the PodMonitor's scrape targets, the one time factor, the rollout status view."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.podexec import render
from support.procs import require_binary
from support.project import REPO

from mlops_local import istio
from mlops_local.monitoring import PodTarget, PrometheusConfig
from mlops_local.prhost import PullRequestHost
from mlops_local.rollout import scale_duration
from mlops_local.state import StateFile, format_state, load

STAGING = REPO / "serving" / "manifests" / "models" / "wine-classifier" / "staging"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x", "HOME": str(repo)}
                          ).stdout.strip()


def test_the_pull_request_host_merges_with_a_merge_commit_and_refuses_what_github_refuses(tmp_path: Path) -> None:
    require_binary("git")
    work, bare = tmp_path / "work", tmp_path / "bare.git"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    (work / "release.env").write_text("MODEL_VERSION=\n")
    _git(work, "add", ".")
    _git(work, "commit", "-qm", "base")
    _git(work, "checkout", "-qb", "promote/m/staging/v1")
    (work / "release.env").write_text("MODEL_VERSION=1\n")
    _git(work, "commit", "-qam", "promote")
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    host = PullRequestHost(bare, token="t0ken")
    auth = {"authorization": "Bearer t0ken"}
    base = f"/repos/{host.slug}"
    assert host.handle("GET", f"{base}/pulls", {}, None, {})[0] == 401
    status, pr = host.handle("POST", f"{base}/pulls", {}, {"head": "promote/m/staging/v1", "base": "main",
                                                          "title": "promote m", "body": "card"}, auth)
    assert status == 201 and pr["state"] == "open"
    assert host.handle("POST", f"{base}/pulls", {}, {"head": "promote/m/staging/v1", "base": "main",
                                                   "title": "again", "body": ""}, auth)[0] == 422
    before = _git(bare, "rev-parse", "main")
    status, merged = host.handle("PUT", f"{base}/pulls/1/merge", {}, {}, auth)
    assert status == 200 and merged["merged"]
    assert _git(bare, "rev-parse", "main") == merged["sha"] != before
    subject = _git(bare, "log", "-1", "--format=%s", "main")
    assert subject == f"Merge pull request #1 from {host.owner}/promote/m/staging/v1"
    assert _git(bare, "show", "main:release.env") == "MODEL_VERSION=1"
    assert _git(bare, "rev-parse", "main^1") == before  # first parent: the base branch
    found = host.handle("GET", f"{base}/pulls", {"head": f"{host.owner}:promote/m/staging/v1", "state": "closed"},
                        None, auth)[1]
    assert [p["merge_commit_sha"] for p in found] == [merged["sha"]]
    assert host.handle("PUT", f"{base}/pulls/1/merge", {}, {}, auth)[0] == 405  # not open any more
    status, page = host.page("/")
    assert status == 200 and "promote/m/staging/v1" in page and "merged" in page


def test_the_rendered_istio_objects_translate_to_envoy_routes_and_clusters() -> None:
    rendered = render(STAGING)
    [vs] = rendered.of_kind("VirtualService")
    gateway = render(REPO / "serving" / "manifests" / "gateway").of_kind("Gateway")[0]
    domains = istio.gateway_hosts(vs, gateway)
    assert domains == ["wine-classifier.staging.mlops.local"]  # the mesh-only host is not on the ingress
    host = istio.virtual_host(vs, domains)
    routes = host["routes"]
    assert len(routes) == len(vs["spec"]["http"][0]["match"])
    # the committed weights are 100/0: istiod leaves the weight-0 canary out
    assert {c["name"] for r in routes for c in r["route"]["weighted_clusters"]["clusters"]} == {
        "outbound|80||wine-classifier-model-server-stable.models-staging.svc.cluster.local"}
    assert all(r["route"]["timeout"] == vs["spec"]["http"][0]["timeout"] for r in routes)
    [rule] = [r for r in rendered.of_kind("DestinationRule") if r["spec"]["host"].endswith("-stable")]
    cluster = istio.cluster("c", [("127.0.0.1", 1)], rule)
    detection = rule["spec"]["trafficPolicy"]["outlierDetection"]
    assert cluster["outlier_detection"]["consecutive_5xx"] == detection["consecutive5xxErrors"]
    assert cluster["circuit_breakers"]["thresholds"][0]["max_pending_requests"] == (
        rule["spec"]["trafficPolicy"]["connectionPool"]["http"]["http1MaxPendingRequests"])


def test_the_pod_monitor_scrapes_the_pods_with_the_operator_s_labels(tmp_path: Path) -> None:
    [monitor] = render(STAGING).of_kind("PodMonitor")
    config = PrometheusConfig(tmp_path, tmp_path / "rules.yml", "127.0.0.1:9091", None, "1s", 0.03, 1.0)
    assert config.add_pod_monitor(monitor) and not config.add_pod_monitor(monitor)
    labels = dict(monitor["spec"]["selector"]["matchLabels"])
    config.write_targets([
        PodTarget("127.0.0.1:1234", "models-staging", "p-0", "model-server",
                  {**labels, "rollouts-pod-template-hash": "abc"}, "http"),
        PodTarget("127.0.0.1:9999", "models-production", "q-0", "model-server",
                  {**labels, "rollouts-pod-template-hash": "def"}, "http"),
    ])
    [job] = [j for j in config.document()["scrape_configs"] if j["job_name"].startswith("podMonitor/")]
    assert job["job_name"] == "podMonitor/models-staging/wine-classifier-model-server/0"
    assert job["honor_labels"] is True and job["scrape_interval"] == "1000ms"  # 15s x 0.03, not below 1s
    [group] = json.loads(Path(job["file_sd_configs"][0]["files"][0]).read_text())
    assert group == {"targets": ["127.0.0.1:1234"], "labels": {
        "namespace": "models-staging", "pod": "p-0", "container": "model-server", "endpoint": "http",
        "rollouts_pod_template_hash": "abc"}}


@pytest.mark.parametrize(("text", "factor", "expected"), [("1m", 0.03, "1800ms"), ("5m", 0.05, "15000ms"),
                                                          ("30s", 0.03, "900ms"), ("1m30s", 0.1, "9000ms")])
def test_one_factor_scales_every_duration(text: str, factor: float, expected: str) -> None:
    assert scale_duration(text, factor) == expected


def test_rollout_status_shows_weights_measured_shares_and_analysis(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "rollouts.json")
    doc: dict[str, Any] = {
        "name": "m-model-server", "namespace": "models-staging", "revision": 2, "phase": "Progressing",
        "stable": {"hash": "aaa", "version": "1"}, "canary": {"hash": "bbb", "version": "2"}, "message": "",
        "steps": [{"index": 1, "action": "setWeight 50", "status": "Successful", "weight": 50, "requests": 1012,
                   "share": 0.497, "metrics": []},
                  {"index": 2, "action": "analysis (1 templates)", "status": "Running", "weight": None,
                   "requests": 0, "share": None,
                   "metrics": [{"name": "success-rate", "phase": "Successful", "value": "[1]"}]}]}
    state.put(doc)
    text = format_state(load(tmp_path / "rollouts.json"))
    assert "models-staging/m-model-server" in text and "canary v2 (bbb)" in text
    assert "49.7%" in text and "1012" in text and "success-rate Successful [1]" in text
    assert format_state(load(tmp_path / "rollouts.json"), "other") == "no rollout named other in the state file"

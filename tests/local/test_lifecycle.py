"""The README's main command, end to end: ``mlops lifecycle`` (what ``hack/demo.sh`` runs).

It starts MLflow, Prometheus, Pushgateway, Alertmanager, Envoy, a Git smart-HTTP server and the
local pull-request host on loopback, promotes through pull requests, runs every canary of the
rendered Rollouts through Envoy weights with Prometheus analysis, aborts a faulty version, opens its
revert, runs batch and drift; then stops everything. Its summary (``summary.json``) is checked here
as the issue asks, and nothing of the run may be left running or listening afterwards. Every job
(training, batch, drift and its retraining branch, rollout outcomes) must have run from its rendered
WorkflowTemplate or CronWorkflow through the local runner for Argo Workflows.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.procs import require_binary
from support.project import REPO, base_env

from mlops_local.platform import BINARIES

pytestmark = pytest.mark.integration


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _processes_under(path: Path) -> list[str]:
    """Processes whose command line or working directory lies in ``path``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if str(path) in cmdline or cwd.startswith(str(path)):
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], Path]:
    for name in BINARIES:
        require_binary(name)
    home = tmp_path_factory.mktemp("lifecycle") / "home"
    env = base_env(MLOPS_LOCAL_HOME=str(home))
    proc = subprocess.run([sys.executable, "-m", "mlops_workflows.cli", "lifecycle"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)
    summary_file = home / "summary.json"
    assert summary_file.exists(), proc.stdout[-5000:] + proc.stderr[-5000:]
    return proc, json.loads(summary_file.read_text()), home


@pytest.mark.timeout(1900)
def test_the_lifecycle_command_succeeds_and_prints_its_summary(run: Any) -> None:
    proc, _, _ = run
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    assert "== summary" in proc.stdout and "lifecycle complete" in proc.stdout


def test_every_promotion_is_exactly_one_merged_pull_request(run: Any) -> None:
    _, summary, _ = run
    promotions = [p for p in summary["pull_requests"] if p["kind"] == "promote"]
    assert [(p["env"], p["version"]) for p in promotions] == [
        ("staging", 1), ("production", 1), ("staging", 2), ("production", 2), ("staging", 3)]
    final = summary["pull_requests_final"]
    for promotion in promotions:
        same = [pr for pr in final if pr["head"]["ref"] == promotion["branch"] and pr["merged"]]
        assert len(same) == 1 and same[0]["number"] == promotion["number"] and same[0]["merge_commit_sha"], same
        assert "gate" in same[0]["body"].lower()  # the model card
    # v1's staging pull request was opened by the train workflow's promote step, the others by the bot's CLI
    assert [p["opened_by"] for p in promotions] == ["train workflow"] + ["mlops promote"] * 4


def test_canary_shares_through_envoy_match_each_set_weight(run: Any) -> None:
    _, summary, _ = run
    steps = [s for c in summary["canaries"] for s in c["steps"] if s.get("weight") is not None
             and s["status"] == "Successful"]
    weights = sorted({s["weight"] for s in steps})
    assert weights == [10, 25, 50, 100], weights  # production 10/25/50/100, staging 50/100
    for step in steps:
        assert step["requests"] >= 1000, step
        assert abs(100 * step["share"] - step["weight"]) <= 5, step
        assert step["errors"] == 0, step


def test_good_canaries_complete_and_move_their_alias(run: Any) -> None:
    _, summary, _ = run
    completed = [c for c in summary["canaries"] if c["outcome"] == "completed"]
    assert [(c["env"], c["stable"]["version"]) for c in completed] == [("staging", "2"), ("production", "2")]
    for canary in completed:
        assert canary["phase"] == "Healthy"
        assert all(s["status"] == "Successful" for s in canary["steps"]), canary["steps"]
    moved = [(a["env"], a["expected"], a["holder"]) for a in summary["aliases"]]
    assert moved == [("staging", 1, 1), ("production", 1, 1), ("staging", 2, 2), ("production", 2, 2)]


def test_the_faulty_canary_aborts_back_to_stable_and_opens_one_revert(run: Any) -> None:
    _, summary, _ = run
    [aborted] = [c for c in summary["canaries"] if c["outcome"] == "aborted"]
    assert aborted["env"] == "staging" and aborted["canary"]["version"] == "3" and aborted["phase"] == "Degraded"
    [analysis] = [s for s in aborted["steps"] if s["action"].startswith("analysis")]
    assert analysis["status"] == "Failed"
    assert any(m["phase"] == "Failed" for m in analysis["metrics"]), analysis
    # Envoy served the stable weights within one (scaled) analysis interval: staging's is 30s.
    assert aborted["abort_to_stable_s"] <= 30 * summary["time_scale"], aborted["abort_to_stable_s"]
    after = aborted["after_abort"]
    assert after["requests"] >= 100 and after["canary_answers"] == 0 and after["errors"] == 0, after
    reverts = [pr for pr in summary["pull_requests_final"] if pr["head"]["ref"].startswith("rollback/")]
    assert len(reverts) == 1 and reverts[0]["head"]["ref"] == "rollback/wine-classifier/staging/v2", reverts


def test_drift_reaches_prometheus_and_the_alert_fires(run: Any) -> None:
    _, summary, _ = run
    assert summary["drift"]["exit"] == 10
    assert summary["drift"]["psi_max"] is not None and summary["drift"]["psi_max"] >= 0.25
    assert "MlopsFeatureDrift" in summary["alerts"]
    assert "nothing registered" in summary["retrain"]["train"]


def _steps(workflow: dict[str, Any]) -> dict[str, tuple[str, int | None]]:
    return {s["name"]: (s["phase"], s["exit_code"]) for s in workflow["steps"]}


def test_every_job_ran_from_its_rendered_workflow_template(run: Any) -> None:
    _, summary, _ = run
    workflows = summary["workflows"]
    trains = [w for w in workflows if w["template"] == "train"]
    # v1 (its promote task opens the staging pull request), v2 and v3, and the drift check's retraining run
    assert [w["parameters"]["promote-to"] for w in trains] == ["staging", "none", "none", "staging"], trains
    assert [v["workflow"] for v in summary["versions"]] == [w["name"] for w in trains[:3]]
    for workflow in trains:
        [train] = [s for s in workflow["steps"] if s["name"] == "train"]
        assert train["command"] == ["mlops", "train", "--config", "/app/workflows/models/wine-classifier.yaml",
                                    "--version-file", "/tmp/outputs/version"]
    assert _steps(trains[0]) == {"train": ("Succeeded", 0), "promote": ("Succeeded", 0)}
    for workflow in trains[1:3]:
        assert _steps(workflow) == {"train": ("Succeeded", 0), "promote": ("Skipped", None)}

    [batch] = [w for w in workflows if w["template"] == "batch-inference"]
    assert batch["source"] == "CronWorkflow/batch-inference-wine-classifier" and batch["phase"] == "Succeeded"
    [plan] = [s for s in batch["steps"] if s["name"] == "plan"]
    planned = json.loads(plan["result"])  # the plan step's standard output, fanned out by withParam
    assert len(planned) == 2, planned  # two CSV files: two units of work (the CronWorkflow asks 4 shards)
    predicts = [s for s in batch["steps"] if s["name"].startswith("predict(")]
    assert all(s["phase"] == "Succeeded" for s in predicts), batch["steps"]
    assert sorted(s["command"][s["command"].index("--shard") + 1] for s in predicts) == planned

    [drift] = [w for w in workflows if w["template"] == "drift-check"]
    assert drift["source"] == "CronWorkflow/drift-check-wine-classifier"
    # exit 10 fails the pod; continueOn lets the outcome step judge it, and `when` runs retrain on 10
    assert _steps(drift) == {"drift": ("Failed", 10), "outcome": ("Succeeded", 0), "retrain": ("Succeeded", 0)}
    retrain = trains[3]
    assert retrain["submitted_by"] == "Argo Server API as ServiceAccount mlops-drift"
    assert retrain["parameters"]["trigger"] == "drift" and summary["retrain"]["workflow"] == retrain["name"]
    # the retraining run registered nothing (same data and config): its empty version output skips promote,
    # so `candidate` (still the aborted v3) is not proposed again
    assert _steps(retrain) == {"train": ("Succeeded", 0), "promote": ("Skipped", None)}
    assert summary["retrain"]["pull_requests"] == []

    outcomes = [w for w in workflows if w["template"] == "rollout-outcome"]
    assert outcomes and all(w["phase"] == "Succeeded" for w in outcomes)
    [aborted] = [w for w in outcomes if w["parameters"]["outcome"] == "aborted"]
    assert _steps(aborted) == {"finalize": ("Skipped", None), "revert": ("Succeeded", 0)}
    assert [p["opened_by"] for p in summary["pull_requests"] if p["kind"] == "revert"] == ["rollout-outcome workflow"]


def test_nothing_is_left_running(run: Any) -> None:
    _, summary, home = run
    ports = [int(url.rsplit(":", 1)[1].split("/")[0]) for url in summary["urls"].values()]
    ports += summary["pod_ports"]
    assert len(ports) > 8
    assert [p for p in ports if _listening(p)] == []
    assert _processes_under(home) == []

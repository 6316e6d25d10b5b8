"""The staging analysis Job that replays a version's labelled holdout rows, run as its pod would.

Two real model servers stand for the Rollout's tracks. The rendered staging AnalysisTemplate's Job
container (args substituted from the rendered Rollout's analysis step, as the controller does)
runs `mlops analysis replay` against them: a good canary passes; a canary whose model is worse on
the holdout than its gate minimum and than stable fails the analysis (exit 3).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.podexec import render
from support.project import REPO, WINE_CONFIG, EmbeddedStore, base_env, run_mlops

pytestmark = pytest.mark.integration

MODEL = "wine-classifier"
STAGING = REPO / "serving" / "manifests" / "models" / MODEL / "staging"
WEAK = ("estimator.params.n_estimators=1", "estimator.params.max_depth=1")
_ARG = re.compile(r"\{\{\s*args\.([A-Za-z0-9-]+)\s*\}\}")


def _substitute(node: Any, args: dict[str, str]) -> Any:
    if isinstance(node, str):
        return _ARG.sub(lambda m: args[m.group(1)], node)
    if isinstance(node, list):
        return [_substitute(n, args) for n in node]
    if isinstance(node, dict):
        return {k: _substitute(v, args) for k, v in node.items()}
    return node


@pytest.fixture(scope="module")
def store(trained_store: EmbeddedStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """wine-classifier v1 (the shipped config) and v2, a one-stump forest: its gate failed, it is
    registered all the same (gate=failed), with the shipped thresholds in its config."""
    work = tmp_path_factory.mktemp("replay")
    shutil.copytree(trained_store.home, work / ".mlops")
    args = ["train", "--config", str(WINE_CONFIG), *(a for o in WEAK for a in ("--set", o))]
    result = run_mlops(*args, cwd=work, env=base_env(MLOPS_HOME=str(work / ".mlops")))
    assert result.returncode == 3 and f"{MODEL} v2" in result.stdout, result.stdout + result.stderr
    yield work / ".mlops"


def _replay(store: Path, tmp_path: Path, canary_version: str, canary_url: str, stable_url: str) -> Any:
    rendered = render(STAGING)
    rollout = rendered.find("Rollout", f"{MODEL}-model-server")
    rollout["metadata"]["annotations"]["mlops.io/model-version"] = canary_version  # what Git would pin
    [step] = [s["analysis"] for s in rollout["spec"]["strategy"]["canary"]["steps"] if "analysis" in s]
    name = f"{MODEL}-model-holdout-replay"
    assert {"templateName": name} in step["templates"]
    # The controller resolves the step's args (fieldRefs of the Rollout) into the template.
    args: dict[str, str] = {}
    for arg in step["args"]:
        if "value" in arg:
            args[arg["name"]] = arg["value"]
            continue
        path = arg["valueFrom"].get("fieldRef", {}).get("fieldPath", "")
        if path == "metadata.namespace":
            args[arg["name"]] = rollout["metadata"]["namespace"]
        elif found := re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path):
            args[arg["name"]] = rollout["metadata"][found.group(1)][found.group(2)]
    template = rendered.find("AnalysisTemplate", name)
    declared = {a["name"] for a in template["spec"]["args"]}
    [metric] = template["spec"]["metrics"]
    job = _substitute(metric["provider"]["job"], {k: v for k, v in args.items() if k in declared})
    pod = rendered.job_container(job, secrets={
        "model-store-credentials": {"AWS_ACCESS_KEY_ID": "unused", "AWS_SECRET_ACCESS_KEY": "unused"},
        "model-replay-api-key": {"api-key": "replay-key"},
    })
    namespace = rollout["metadata"]["namespace"]
    local = pod.with_overrides({
        f"http://{MODEL}-model-server-canary.{namespace}.svc.cluster.local": canary_url,
        f"http://{MODEL}-model-server-stable.{namespace}.svc.cluster.local": stable_url,
        "http://mlflow.mlops.svc.cluster.local:5000": f"sqlite:///{store}/mlflow.db",
    })
    return local.run(cwd=tmp_path, timeout=180)


def test_replay_passes_a_good_canary_and_fails_a_worse_one(store: Path, tmp_path: Path) -> None:
    from support.serving import start_server

    def server(version: int) -> Any:
        env = {**base_env(MLOPS_HOME=str(store)), "MLOPS_SERVING_MODELS": f"{MODEL}:{version}",
               "MLOPS_SERVING_AUTH": "off", "MLOPS_SERVING_PREDLOG_SAMPLE_RATE": "0"}
        return start_server(tmp_path, env)

    good, weak = server(1), server(2)
    try:
        passed = _replay(store, tmp_path, "1", good.url, weak.url)
        assert passed.returncode == 0, passed.stdout + passed.stderr
        assert "[ok] canary accuracy" in passed.stdout and "replay: Successful" in passed.stdout

        failed = _replay(store, tmp_path, "2", weak.url, good.url)
        assert failed.returncode == 3, failed.stdout + failed.stderr
        assert "[FAIL] canary accuracy" in failed.stdout and "< gate minimum 0.9" in failed.stdout
        assert "beyond the tolerance 0.02" in failed.stdout and "replay: Failed" in failed.stdout
    finally:
        good.stop()
        weak.stop()

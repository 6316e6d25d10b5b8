"""The README's ingress path through a real Envoy (the proxy inside Istio), during a canary step.

The staging overlay of wine-classifier is rendered with ``kubectl kustomize``; its Rollout's
``setWeight`` is applied to the VirtualService route it names (70/30, as Argo Rollouts would), and
that VirtualService, restricted to the hosts the shared ingress Gateway admits, is translated to an
Envoy bootstrap (``support.envoy``, a test double of istiod). Behind it run two real model servers
with API-key auth: "stable" serves wine-classifier v1 of the session store, "canary" serves a v2
trained in a copy of that store, so each response's ``version`` names the backend that answered.
"""

from __future__ import annotations

import contextlib
import copy
import http.client
import json
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from support.envoy import Envoy, envoy_proxy, gateway_hosts
from support.procs import LOOPBACK, free_port, managed, require_binary, spawn, wait_for_http
from support.project import REPO, WINE_CONFIG, EmbeddedStore, run_mlops

pytestmark = pytest.mark.integration

OVERLAY = REPO / "serving" / "manifests" / "models" / "wine-classifier" / "staging"
GATEWAY = REPO / "serving" / "manifests" / "gateway"
HOST = "wine-classifier.staging.mlops.local"
PATH = "/models/wine-classifier/predict"
BODY = json.dumps({"features": [[13.2, 1.78, 2.14, 11.2, 100, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050]]})
CANARY_WEIGHT = 30
REQUESTS = 400


def _render(folder: Path) -> list[dict[str, Any]]:
    kubectl = require_binary("kubectl")
    result = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, f"kubectl kustomize {folder.relative_to(REPO)}: {result.stderr}"
    return [d for d in yaml.safe_load_all(result.stdout) if isinstance(d, dict)]


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _set_weight(virtual_service: dict[str, Any], rollout: dict[str, Any], canary_weight: int) -> dict[str, Any]:
    """A copy of ``virtual_service`` with a Rollout's ``setWeight`` applied to the routes it names."""
    canary = rollout["spec"]["strategy"]["canary"]
    istio = canary["trafficRouting"]["istio"]["virtualService"]
    assert istio["name"] == virtual_service["metadata"]["name"]
    weights = {canary["stableService"]: 100 - canary_weight, canary["canaryService"]: canary_weight}
    stepped = copy.deepcopy(virtual_service)
    for route in stepped["spec"]["http"]:
        if route.get("name") in istio["routes"]:
            for dest in route["route"]:
                dest["weight"] = weights[dest["destination"]["host"]]
    return stepped


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    docs = _render(OVERLAY)
    return {
        "virtual_service": _one(docs, "VirtualService"),
        "rollout": _one(docs, "Rollout"),
        "gateway": _one(_render(GATEWAY), "Gateway"),
    }


@dataclass(frozen=True)
class Ingress:
    envoy: Envoy
    key: str
    virtual_service: dict[str, Any]  # the 70/30 step that Envoy serves
    pod_urls: tuple[str, ...]  # each model server's own address (what Prometheus's PodMonitor scrapes)


def _model_server(store: EmbeddedStore, model: str, keys_file: Path, log: Path) -> tuple[Any, str]:
    port = free_port()
    env = store.env(
        MLOPS_SERVING_MODELS=model,
        MLOPS_SERVING_HOST=LOOPBACK,
        MLOPS_SERVING_PORT=str(port),
        MLOPS_SERVING_AUTH="api-key",
        MLOPS_SERVING_API_KEYS_FILE=str(keys_file),
        MLOPS_SERVING_PREDLOG_SAMPLE_RATE="0",  # writes nothing into the (shared) store
        PYTHONUNBUFFERED="1",
    )
    return spawn([sys.executable, "-m", "mlops_serving"], log, cwd=store.workdir, env=env), str(port)


@pytest.fixture(scope="module")
def ingress(
    manifests: dict[str, dict[str, Any]], trained_store: EmbeddedStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ingress]:
    require_binary("envoy")  # skip before training anything
    from mlops_serving.auth import generate_key

    work = tmp_path_factory.mktemp("ingress")
    key, line = generate_key(["wine-classifier"])
    keys_file = work / "api-keys"
    keys_file.write_text(line + "\n")

    with contextlib.ExitStack() as stack:
        # stable: v1 of the shared session store (read only), started while v2 trains
        stable, stable_port = _model_server(trained_store, "wine-classifier:1", keys_file, work / "stable.log")
        stack.enter_context(managed(stable, grace=5))

        # canary: v2 in a copy of the store; a new experiment keeps its artifacts in the copy too
        canary_store = EmbeddedStore(work / "canary-store")
        shutil.copytree(trained_store.home, canary_store.home)
        trained = run_mlops("train", "--config", str(WINE_CONFIG), "--set", "estimator.params.n_estimators=50",
                            cwd=canary_store.workdir,
                            env=canary_store.env(MLOPS_TRAIN_EXPERIMENT_PREFIX="envoy-canary-"))
        assert trained.returncode == 0, trained.stdout + trained.stderr
        canary, canary_port = _model_server(canary_store, "wine-classifier:2", keys_file, work / "canary.log")
        stack.enter_context(managed(canary, grace=5))

        for proc, port, name in ((stable, stable_port, "stable"), (canary, canary_port, "canary")):
            wait_for_http(f"http://{LOOPBACK}:{port}/readyz", timeout=60, proc=proc, log=work / f"{name}.log")

        rollout = manifests["rollout"]["spec"]["strategy"]["canary"]
        stepped = _set_weight(manifests["virtual_service"], manifests["rollout"], CANARY_WEIGHT)
        backends = {rollout["stableService"]: (LOOPBACK, int(stable_port)),
                    rollout["canaryService"]: (LOOPBACK, int(canary_port))}
        domains = gateway_hosts(stepped, manifests["gateway"])
        envoy = stack.enter_context(envoy_proxy(work / "envoy", stepped, domains, backends))
        pods = tuple(f"http://{LOOPBACK}:{port}" for port in (stable_port, canary_port))
        yield Ingress(envoy, key, stepped, pods)


def _get(url: str, path: str, host: str, key: str | None) -> tuple[int, dict[str, str]]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or LOOPBACK, parts.port, timeout=30)
    try:
        headers = {"Host": host}
        if key is not None:
            headers["x-api-key"] = key
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def _post(url: str, host: str, key: str | None) -> tuple[int, dict[str, str], Any]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or LOOPBACK, parts.port, timeout=30)
    try:
        headers = {"Host": host, "Content-Type": "application/json"}
        if key is not None:
            headers["x-api-key"] = key
        conn.request("POST", PATH, body=BODY, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def test_committed_virtual_service_routes_primary_to_stable(manifests: dict[str, dict[str, Any]]) -> None:
    vs = manifests["virtual_service"]
    canary = manifests["rollout"]["spec"]["strategy"]["canary"]
    assert HOST in vs["spec"]["hosts"]
    assert "istio-system/models-gateway" in vs["spec"]["gateways"]
    assert canary["trafficRouting"]["istio"]["virtualService"]["routes"] == ["primary"]
    (primary,) = [r for r in vs["spec"]["http"] if r.get("name") == "primary"]
    weights = {d["destination"]["host"]: d["weight"] for d in primary["route"]}
    assert weights == {canary["stableService"]: 100, canary["canaryService"]: 0}
    assert gateway_hosts(vs, manifests["gateway"]) == [HOST]


def test_canary_step_splits_traffic_through_envoy(ingress: Ingress) -> None:
    (primary,) = [r for r in ingress.virtual_service["spec"]["http"] if r["name"] == "primary"]
    assert sorted(d["weight"] for d in primary["route"]) == [CANARY_WEIGHT, 100 - CANARY_WEIGHT]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: _post(ingress.envoy.url, HOST, ingress.key), range(REQUESTS)))

    statuses = Counter(status for status, _, _ in results)
    assert statuses == {200: REQUESTS}, (statuses, [b for s, _, b in results if s != 200][:3])
    assert all(headers.get("server") == "envoy" for _, headers, _ in results)
    versions = Counter(str(body["version"]) for _, _, body in results)
    assert set(versions) == {"1", "2"}, versions
    share = versions["2"] / REQUESTS
    # Binomial(400, 0.3): sd ≈ 0.023, so [0.2, 0.4] is more than 4 sd either side.
    assert 0.2 <= share <= 0.4, versions


def test_missing_api_key_is_401_through_envoy(ingress: Ingress) -> None:
    status, headers, body = _post(ingress.envoy.url, HOST, None)
    assert status == 401, body
    assert headers.get("server") == "envoy"


def test_unknown_host_is_404_from_envoy(ingress: Ingress) -> None:
    for host in ("wine-classifier.production.mlops.local", "breast-cancer-classifier.staging.mlops.local",
                 "wine-classifier-model-server-stable"):  # a mesh-only host is not exposed on the ingress
        status, _, body = _post(ingress.envoy.url, host, ingress.key)
        assert status == 404, (host, body)


# Paths the ingress must not expose, and the prediction / health paths it must (the three protocols).
INTERNAL = ("/metrics", "/openapi.json", "/docs", "/redoc", "/version", "/", "/metricsx")
PUBLIC_GET = ("/healthz", "/readyz", "/ping", "/health", "/v2/health/ready", "/v2/models/wine-classifier")


def _served_by_ingress(vs: dict[str, Any], path: str) -> bool:
    (primary,) = [r for r in vs["spec"]["http"] if r.get("name") == "primary"]
    assert len(vs["spec"]["http"]) == 1, "only the primary route may exist (Argo Rollouts moves its weights)"
    for match in primary.get("match") or [{}]:
        uri = match.get("uri", {"prefix": "/"})
        if uri.get("exact") == path or ("prefix" in uri and path.startswith(uri["prefix"])):
            return True
    return False


def test_rendered_ingress_routes_only_prediction_and_health(manifests: dict[str, dict[str, Any]]) -> None:
    vs = manifests["virtual_service"]
    for path in INTERNAL:
        assert not _served_by_ingress(vs, path), f"{path} is reachable through the ingress"
    for path in (*PUBLIC_GET, PATH, "/predict", "/invocations", "/v2/models/wine-classifier/infer"):
        assert _served_by_ingress(vs, path), f"{path} is not reachable through the ingress"


def test_internal_routes_are_404_through_envoy_and_metrics_stay_on_the_pods(ingress: Ingress) -> None:
    for path in INTERNAL:
        status, headers = _get(ingress.envoy.url, path, HOST, ingress.key)
        assert status == 404 and headers.get("server") == "envoy", (path, status)
    for path in PUBLIC_GET:
        status, headers = _get(ingress.envoy.url, path, HOST, ingress.key)
        assert status == 200 and headers.get("server") == "envoy", (path, status)
    for pod in ingress.pod_urls:  # Prometheus (PodMonitor) scrapes each pod, not the ingress
        status, _ = _get(pod, "/metrics", "pod", None)
        assert status == 200, pod

"""The local reconciler: Argo CD, the kubelet, kube-proxy and istiod for the models' Applications.

- **Applications** come from the models' ApplicationSet (its git directory generator's path pattern,
  name ``<model>-<env>``, namespace ``models-<env>``); :meth:`LocalCluster.sync` fetches the Git
  server's ``main`` into the reconciler's own clone and renders the Application's folder with
  ``kubectl kustomize``, as Argo CD does.
- **Pods** are local processes: the Rollout's container resolved by :mod:`mlops_local.podspec`
  (its command, the image's ENTRYPOINT and ENV, ``envFrom``/``env`` from the rendered ConfigMaps
  and the local secrets) with the pod's network and volumes mapped to loopback: the container port
  becomes a free port, ``0.0.0.0`` becomes ``127.0.0.1``, each volume mount a folder (emptyDir) or
  files (Secret), in-cluster service URLs the local services, and ``s3://<bucket>`` a folder per
  bucket. Ready when its readiness probe answers.
- **Services** select the pods of one pod-template hash (Argo Rollouts sets that selector on the
  stable and canary Services); **Envoy** gets routes from the VirtualService with the weights the
  runner sets and clusters whose endpoints are those pods (:mod:`mlops_local.istio`).
- **Prometheus** scrapes the pods of each PodMonitor (:mod:`mlops_local.monitoring`).
"""

from __future__ import annotations

import glob
import hashlib
import json
import secrets
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlops_local import istio
from mlops_local.envoy import EnvoyGateway
from mlops_local.monitoring import PodTarget, PrometheusConfig, reload
from mlops_local.podspec import PodCommand, Rendered, external_secret_keys, render
from mlops_local.procs import LOOPBACK, Process, Supervisor, free_ports, http_status
from mlops_local.settings import LocalSettings
from mlops_platform.errors import ServiceUnavailableError

HASH_LABEL = "rollouts-pod-template-hash"


def pod_template_hash(template: Mapping[str, Any]) -> str:
    """A stable hash of a pod template (Argo Rollouts names ReplicaSets and labels pods with one)."""
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class Pod:
    name: str
    hash: str
    port: int
    process: Process
    labels: dict[str, str]
    container: str
    port_name: str

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


@dataclass
class ReplicaSet:
    hash: str
    version: str
    pods: list[Pod]


@dataclass
class App:
    name: str
    model: str
    env: str
    folder: str  # relative to the repository
    namespace: str
    rendered: Rendered | None = None
    commit: str = ""
    replicasets: dict[str, ReplicaSet] = field(default_factory=dict)
    selectors: dict[str, str] = field(default_factory=dict)  # Service -> pod-template hash it selects
    virtual_service: dict[str, Any] | None = None  # as Argo Rollouts last wrote it
    revision: int = 0

    def rollout(self) -> dict[str, Any]:
        assert self.rendered is not None
        rollouts = self.rendered.of_kind("Rollout")
        if len(rollouts) != 1:
            raise ServiceUnavailableError(f"{self.folder} renders {len(rollouts)} Rollouts (one expected)")
        return rollouts[0]


def generate_secrets(repo: Path, given: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """The local secret store: every Secret an ExternalSecret under infra/secrets/ creates, with a random
    value per key, except the values ``given`` (API keys, the bot's token ...)."""
    out: dict[str, dict[str, str]] = {}
    for path in sorted((repo / "infra" / "secrets").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "ExternalSecret":
                continue
            name = (doc["spec"].get("target") or {}).get("name", doc["metadata"]["name"])
            keys = external_secret_keys(name, repo) or set()
            out[name] = {key: secrets.token_hex(16) for key in sorted(keys)}
    for name, values in given.items():
        unknown = set(values) - set(out.get(name, values))
        if unknown:
            raise ServiceUnavailableError(f"Secret {name} has no keys {sorted(unknown)} in its ExternalSecret")
        out.setdefault(name, {}).update(values)
    return out


def applicable(pod: PodCommand, candidates: Mapping[str, str]) -> dict[str, str]:
    """The overrides among ``candidates`` that match an env value or argument of ``pod``."""
    values = [*pod.argv, *pod.env.values()]

    def hit(key: str) -> bool:
        return any(v == key or v.startswith(key.rstrip("/") + "/") for v in values)

    return {k: v for k, v in candidates.items() if hit(k)}


class LocalCluster:
    def __init__(
        self,
        settings: LocalSettings,
        repo: Path,
        clone: Path,
        supervisor: Supervisor,
        envoy: EnvoyGateway,
        prometheus: PrometheusConfig,
        prometheus_url: str,
        services: Mapping[str, str],
        secret_store: Mapping[str, Mapping[str, str]],
        git_env: Mapping[str, str],
    ) -> None:
        self.settings = settings
        self.repo = repo  # this checkout: Dockerfiles, the ApplicationSet's pattern
        self.clone = clone  # the reconciler's clone of the Git server's repository
        self.supervisor = supervisor
        self.envoy = envoy
        self.prometheus = prometheus
        self.prometheus_url = prometheus_url
        self.services = dict(services)  # in-cluster URL -> local URL
        self.secrets = {k: dict(v) for k, v in secret_store.items()}
        self.git_env = dict(git_env)
        self.gateway: dict[str, Any] | None = None
        self.apps: dict[str, App] = {}
        self.home = settings.home / "cluster"
        self.ports: list[int] = []  # every pod port ever opened (for the record)

    # -- Git and rendering ---------------------------------------------------------------------

    def _git(self, *args: str) -> str:
        out = subprocess.run(["git", "-C", str(self.clone), *args], capture_output=True, text=True,
                             env=self.git_env, timeout=60)
        if out.returncode != 0:
            raise ServiceUnavailableError(f"git {args[0]} in {self.clone}: {out.stderr.strip()}")
        return out.stdout.strip()

    def fetch(self) -> str:
        self._git("fetch", "-q", "origin", "main")
        self._git("checkout", "-q", "--detach", "FETCH_HEAD")
        return self._git("rev-parse", "HEAD")

    def discover(self) -> list[App]:
        """The Applications the models' ApplicationSet generates from the current checkout."""
        docs = yaml.safe_load_all((self.repo / "apps" / "models-applicationset.yaml").read_text())
        appsets = [d for d in docs if d and d.get("kind") == "ApplicationSet"]
        patterns = [d["path"] for a in appsets for g in a["spec"]["generators"] if "git" in g
                    for d in g["git"]["directories"]]
        for pattern in patterns:
            for folder in sorted(glob.glob(str(self.clone / pattern))):
                rel = Path(folder).relative_to(self.clone)
                model, env = rel.parts[3], rel.name
                name = f"{model}-{env}"
                self.apps.setdefault(name, App(name, model, env, str(rel), f"models-{env}"))
        if self.gateway is None:
            gateway = render(self.clone / "serving" / "manifests" / "gateway", repo=self.repo).of_kind("Gateway")
            self.gateway = gateway[0]
        return list(self.apps.values())

    def sync(self, app: App, commit: str) -> bool:
        """Render the Application at ``commit`` (already checked out); True when its objects changed."""
        rendered = render(self.clone / app.folder, repo=self.repo)
        changed = app.rendered is None or rendered.objects != app.rendered.objects
        app.rendered, app.commit = rendered, commit
        if app.virtual_service is None:
            [vs] = rendered.of_kind("VirtualService")
            app.virtual_service = vs
        for monitor in rendered.of_kind("PodMonitor"):
            if self.prometheus.add_pod_monitor(monitor):
                self.prometheus.write()
                reload(self.prometheus_url)
        return changed

    # -- pods ---------------------------------------------------------------------------------

    def _volumes(self, app: App, template: Mapping[str, Any], container: Mapping[str, Any], pod_dir: Path
                 ) -> dict[str, str]:
        volumes = {v["name"]: v for v in template["spec"].get("volumes", [])}
        out: dict[str, str] = {}
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            local = pod_dir / "volumes" / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            if "secret" in volume:
                data = self.secrets.get(volume["secret"]["secretName"])
                if data is None:
                    raise ServiceUnavailableError(f"no local Secret {volume['secret']['secretName']} (volume)")
                for key, value in data.items():
                    (local / key).write_text(value)
                    (local / key).chmod(0o600)
            elif "configMap" in volume:
                assert app.rendered is not None
                cm = app.rendered.configmap(volume["configMap"]["name"]) or {}
                for key, value in cm.items():
                    (local / key).write_text(value)
            out[str(mount["mountPath"])] = str(local)
        return out

    def _overrides(self, pod: PodCommand, extra: Mapping[str, str]) -> PodCommand:
        candidates = {**self.services, **extra}
        for value in [*pod.argv, *pod.env.values()]:
            if value.startswith("s3://"):
                bucket = value[5:].split("/", 1)[0]
                candidates[f"s3://{bucket}"] = str(self.settings.home / "objectstore" / bucket)
        return pod.with_overrides(applicable(pod, candidates))

    def service_urls(self, app: App) -> dict[str, str]:
        """Each Service of the Application (its in-cluster URLs) -> the first pod it selects."""
        out: dict[str, str] = {}
        assert app.rendered is not None
        for service in app.rendered.of_kind("Service"):
            name = service["metadata"]["name"]
            chosen = app.selectors.get(name)
            rs = app.replicasets.get(chosen or "")
            if rs is None or not rs.pods:
                continue
            for host in (f"{name}.{app.namespace}.svc.cluster.local", f"{name}.{app.namespace}.svc", name):
                out[f"http://{host}"] = rs.pods[0].url
                for port in service["spec"]["ports"]:
                    out[f"http://{host}:{port['port']}"] = rs.pods[0].url
        return out

    def start_replicaset(self, app: App, template_hash: str) -> ReplicaSet:
        rollout = app.rollout()
        assert app.rendered is not None
        template = rollout["spec"]["template"]
        replicas = max(1, min(int(rollout["spec"].get("replicas", 1)), self.settings.pods_per_replicaset))
        [container] = template["spec"]["containers"]
        version = str((rollout["metadata"].get("annotations") or {}).get("mlops.io/model-version", ""))
        pods: list[Pod] = []
        for index in range(replicas):
            pod_name = f"{rollout['metadata']['name']}-{template_hash}-{index}"
            pod_dir = self.home / app.namespace / pod_name
            port = free_ports(1)[0]
            self.ports.append(port)
            resolved = app.rendered.rollout_container(rollout["metadata"]["name"], secrets=self.secrets)
            extra = self._volumes(app, template, container, pod_dir)
            extra["0.0.0.0"] = LOOPBACK
            for declared in container.get("ports", []):
                extra[str(declared["containerPort"])] = str(port)
            local = self._overrides(resolved, extra)
            log = self.settings.home / "logs" / f"{app.namespace}.{pod_name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("ab") as out:
                popen = subprocess.Popen(local.local_argv(), cwd=pod_dir, env=local.local_env(),
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
            process = Process(pod_name, popen, log, grace=float(template["spec"].get(
                "terminationGracePeriodSeconds", 30)))
            self.supervisor.processes.append(process)
            labels = {**(template["metadata"].get("labels") or {}), HASH_LABEL: template_hash}
            port_name = str((container.get("ports") or [{}])[0].get("name", "http"))
            pods.append(Pod(pod_name, template_hash, port, process, labels, container["name"], port_name))
        probe = (container.get("readinessProbe") or {}).get("httpGet", {}).get("path", "/")
        for pod in pods:
            pod.process.wait_http(f"{pod.url}{probe}", timeout=self.settings.startup_timeout_s)
        rs = ReplicaSet(template_hash, version, pods)
        app.replicasets[template_hash] = rs
        self.write_targets()
        return rs

    def stop_replicaset(self, app: App, template_hash: str) -> None:
        rs = app.replicasets.pop(template_hash, None)
        if rs is None:
            return
        self.write_targets()
        for pod in rs.pods:
            self.supervisor.stop(pod.process)

    def ready(self, rs: ReplicaSet) -> bool:
        return all(http_status(f"{p.url}/readyz") == 200 for p in rs.pods)

    # -- traffic and scraping --------------------------------------------------------------------

    def write_targets(self) -> None:
        pods = [PodTarget(f"{LOOPBACK}:{p.port}", app.namespace, p.name, p.container, p.labels, p.port_name)
                for app in self.apps.values() for rs in app.replicasets.values() for p in rs.pods]
        self.prometheus.write_targets(pods)

    def push(self) -> None:
        """istiod: routes from every Application's VirtualService, clusters from its Services' pods."""
        assert self.gateway is not None
        hosts: list[dict[str, Any]] = []
        clusters: list[dict[str, Any]] = []
        for app in self.apps.values():
            if app.rendered is None or app.virtual_service is None:
                continue
            vs = app.virtual_service
            domains = istio.gateway_hosts(vs, self.gateway)
            if domains:
                hosts.append(istio.virtual_host(vs, domains))
            rules = app.rendered.of_kind("DestinationRule")
            for host, port in istio.destinations(vs):
                rs = app.replicasets.get(app.selectors.get(host, ""))
                endpoints = [(LOOPBACK, p.port) for p in rs.pods] if rs else []
                rule = istio.destination_rule_for(host, app.namespace, rules)
                clusters.append(istio.cluster(istio.cluster_name(host, port, app.namespace), endpoints, rule))
        self.envoy.apply(clusters, istio.route_configuration(hosts))

    def ingress_host(self, app: App) -> str | None:
        assert self.gateway is not None and app.virtual_service is not None
        hosts = istio.gateway_hosts(app.virtual_service, self.gateway)
        return hosts[0] if hosts else None


__all__ = ["HASH_LABEL", "App", "LocalCluster", "Pod", "ReplicaSet", "applicable", "generate_secrets",
           "pod_template_hash"]

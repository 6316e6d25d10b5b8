"""What a cluster of this repository asks of its nodes: CPU and memory requests and limits, summed.

Counted, from the cluster's rendered app-of-apps (``kubectl kustomize clusters/<name>``):

- **Applications with a path** (this repository's manifests): each folder is rendered and every
  Deployment, StatefulSet, Rollout, DaemonSet (times the nodes) and CloudNativePG ``Cluster`` is
  counted with its replicas; containers plus init containers as Kubernetes sizes a pod.
- **The models ApplicationSet**: every model folder, rendered with the ApplicationSet's own
  ``kustomize.images``/``kustomize.patches`` applied, and *pinned* (the ``unpinned`` component
  dropped, as the first promotion does): the steady state with every model serving. Replicas are the
  larger of the Rollout's and its HorizontalPodAutoscaler's ``minReplicas``.
- **Applications installing a Helm chart**: the charts cannot be rendered offline, so each chart's
  workloads are listed below (``CHART_WORKLOADS``) with the value keys their templates read, and
  the Application's value files are merged in Argo CD's order (:mod:`chartvalues`) and, as Helm
  does, over the chart defaults written here (read from the chart's ``values.yaml`` at the version
  in ``CHART_READ_AT``, which must be the version the Application pins); a resource neither sets
  is reported as *unset* (counted as 0). Charts that scale by an autoscaler count its minimum.
- **Istio sidecars**: every pod in a namespace labelled ``istio-injection=enabled`` (unless its pod
  template says ``sidecar.istio.io/inject: "false"``) gets the proxy of istiod's
  ``global.proxy.resources``.
- **Training** (transient): one step pod of the ``train`` WorkflowTemplate per model, all models at
  once (what ``hack/kind-up.sh`` submits), with Argo's ``wait`` container (``executor.resources``).
- **Argo CD**, installed from its upstream manifest, which sets no resources: the sizes of
  ``clusters/<name>/argocd-resources.yaml`` (:mod:`upstream_sizes`; ``hack/kind-up.sh`` applies
  them), or *unset* for a cluster without that file.
- **kind's own control plane** (kubeadm's static pods, CoreDNS, kindnet), from upstream defaults, on the
  kind cluster only.

Not counted: Jobs and analysis runs that finish (hook Jobs, a canary's analysis), a canary's extra
pod during a rollout, and the kind node's own processes (containerd, kubelet).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlops_gitops.manifests import upstream_sizes
from mlops_gitops.manifests.chartvalues import app_values, get, merge
from mlops_gitops.manifests.discover import render
from mlops_gitops.manifests.model import Obj, Source

# Target of the kind cluster (issue 12): two models in two environments, everything included.
TARGET_CPU_M = 4000
TARGET_MEMORY = 8 * 1024**3

_MEMORY_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
                 "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_QUANTITY = re.compile(r"^([0-9.]+(?:e[0-9]+)?)([a-zA-Z]*)$")


def cpu_millis(value: Any) -> int:
    """``"250m"`` -> 250, ``"1"`` / ``1`` / ``"0.5"`` -> 1000 / 1000 / 500."""
    text = str(value).strip()
    if text.endswith("m"):
        return int(float(text[:-1]))
    return round(float(text) * 1000)


def memory_bytes(value: Any) -> int:
    """``"128Mi"``, ``"1Gi"``, ``"512M"``, ``1073741824`` -> bytes."""
    match = _QUANTITY.match(str(value).strip())
    if not match or match.group(2) not in _MEMORY_UNITS:
        raise ValueError(f"not a memory quantity: {value!r}")
    return int(float(match.group(1)) * _MEMORY_UNITS[match.group(2)])


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one pod (or one container); ``None`` limit = unbounded."""

    cpu_m: int = 0
    memory: int = 0
    cpu_limit_m: int | None = 0
    memory_limit: int | None = 0
    unset: bool = False  # no requests at all

    @classmethod
    def of(cls, spec: Any) -> Resources:
        spec = spec if isinstance(spec, Mapping) else {}
        requests = spec.get("requests") if isinstance(spec.get("requests"), Mapping) else {}
        limits = spec.get("limits") if isinstance(spec.get("limits"), Mapping) else {}
        # Kubernetes: a limit without a request requests the limit.
        cpu = requests.get("cpu", limits.get("cpu"))
        memory = requests.get("memory", limits.get("memory"))
        return cls(
            cpu_m=cpu_millis(cpu) if cpu is not None else 0,
            memory=memory_bytes(memory) if memory is not None else 0,
            cpu_limit_m=cpu_millis(limits["cpu"]) if "cpu" in limits else None,
            memory_limit=memory_bytes(limits["memory"]) if "memory" in limits else None,
            unset=cpu is None and memory is None,
        )

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_m + other.cpu_m, self.memory + other.memory,
            None if self.cpu_limit_m is None or other.cpu_limit_m is None else self.cpu_limit_m + other.cpu_limit_m,
            None if self.memory_limit is None or other.memory_limit is None else self.memory_limit + other.memory_limit,
            self.unset and other.unset,
        )

    def times(self, n: int) -> Resources:
        return Resources(self.cpu_m * n, self.memory * n,
                         None if self.cpu_limit_m is None else self.cpu_limit_m * n,
                         None if self.memory_limit is None else self.memory_limit * n, self.unset)


ZERO = Resources(unset=True, cpu_limit_m=0, memory_limit=0)


@dataclass(frozen=True)
class Line:
    application: str
    workload: str
    pods: int
    per_pod: Resources
    source: str  # manifest | chart values | chart default | upstream default
    transient: bool = False

    @property
    def total(self) -> Resources:
        return self.per_pod.times(self.pods)


@dataclass
class Footprint:
    cluster: str
    nodes: int
    lines: list[Line] = field(default_factory=list)

    def total(self, *, transient: bool = True) -> Resources:
        out = Resources(cpu_limit_m=0, memory_limit=0)
        for line in self.lines:
            if transient or not line.transient:
                out = out + line.total
        return out

    def unset(self) -> list[Line]:
        return [line for line in self.lines if line.pods and line.per_pod.unset]

    def table(self) -> str:
        rows = [f"{'application':<36} {'workload':<44} {'pods':>4} {'cpu req':>8} {'mem req':>9} "
                f"{'cpu lim':>8} {'mem lim':>9}  source"]
        for line in sorted(self.lines, key=lambda x: (x.transient, x.application, x.workload)):
            total = line.total
            rows.append(f"{line.application:<36} {line.workload:<44} {line.pods:>4} {_cpu(total.cpu_m):>8} "
                        f"{_mem(total.memory):>9} {_cpu(total.cpu_limit_m):>8} {_mem(total.memory_limit):>9}  "
                        f"{line.source}{' (transient)' if line.transient else ''}"
                        f"{' [requests unset]' if line.per_pod.unset and line.pods else ''}")
        steady, peak = self.total(transient=False), self.total()
        rows.append(f"{'steady state':<81} {_cpu(steady.cpu_m):>8} {_mem(steady.memory):>9} "
                    f"{_cpu(steady.cpu_limit_m):>8} {_mem(steady.memory_limit):>9}")
        rows.append(f"{'while training every model':<81} {_cpu(peak.cpu_m):>8} {_mem(peak.memory):>9} "
                    f"{_cpu(peak.cpu_limit_m):>8} {_mem(peak.memory_limit):>9}")
        return "\n".join(rows)


def _cpu(millis: int | None) -> str:
    return "unbound" if millis is None else f"{millis / 1000:.2f}"


def _mem(memory: int | None) -> str:
    return "unbound" if memory is None else f"{memory / 2**30:.2f}Gi"


# ------------------------------------------------------------------------------------- chart workloads


@dataclass(frozen=True)
class ChartWorkload:
    """One workload a chart renders: where its values sit and the chart's defaults for them."""

    name: str
    resources: str  # dotted key of its resources
    replicas: str | None = None  # dotted key; None = always one
    enabled: str | None = None  # dotted key that switches it on/off
    enabled_default: bool = True
    replicas_default: int = 1
    resources_default: Mapping[str, Any] = field(default_factory=dict)
    daemonset: bool = False
    sidecars: tuple[str, ...] = ()  # dotted keys of extra containers' resources in the same pod
    # (dotted key that switches the autoscaler on, its default, dotted key of its minimum, default)
    autoscaling: tuple[str, bool, str, int] | None = None
    init: str | None = None  # dotted key of the init containers' resources (the pod asks the larger)
    init_default: Mapping[str, Any] = field(default_factory=dict)
    single_when: tuple[str, str] | None = None  # (dotted key, value) that makes it one pod whatever replicas say


_PROXY_DEFAULT = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "2000m", "memory": "1024Mi"}}

# Chart name -> the version whose values.yaml the defaults below were read from, and where. A test
# keeps each equal to the version the Applications pin: a chart bump means reading them again.
# Subcharts of kube-prometheus-stack 88.2.0 at the versions its Chart.yaml pins: grafana 12.10.4
# (grafana-community/helm-charts), kube-state-metrics 8.2.0 and prometheus-node-exporter 4.56.1.
CHART_READ_AT: dict[str, tuple[str, str]] = {
    "base": ("1.30.3", "istio/istio manifests/charts/base/values.yaml"),
    "istiod": ("1.30.3", "istio/istio manifests/charts/istio-control/istio-discovery/values.yaml"),
    "gateway": ("1.30.3", "istio/istio manifests/charts/gateway/values.yaml"),
    "argo-rollouts": ("2.41.0", "argoproj/argo-helm charts/argo-rollouts/values.yaml"),
    "argo-workflows": ("0.47.5", "argoproj/argo-helm charts/argo-workflows/values.yaml"),
    "cloudnative-pg": ("0.29.0", "cloudnative-pg/charts charts/cloudnative-pg/values.yaml"),
    "external-secrets": ("2.9.0", "external-secrets/external-secrets deploy/charts/external-secrets/values.yaml"),
    "kube-prometheus-stack": ("88.2.0", "prometheus-community/helm-charts charts/kube-prometheus-stack/values.yaml"),
    "minio": ("5.4.0", "minio/minio helm/minio/values.yaml"),
    "prometheus-pushgateway": ("3.2.0", "prometheus-community/helm-charts charts/prometheus-pushgateway/values.yaml"),
    "gitea": ("12.1.3", "gitea helm-gitea values.yaml (the 12.1.3 copy vendored in linode/apl-core charts/gitea)"),
}

# Chart name -> its workloads, with the defaults of CHART_READ_AT's values.yaml: resources empty
# (`{}`) unless written here. What the defaults say, per chart:
# - istiod: resources.requests 500m / 2048Mi, no limits; replicaCount 1 but autoscaleEnabled true,
#   autoscaleMin 1 (keys at the top level; `pilot.` is copied there by templates/zzy_descope_legacy.yaml);
#   global.proxy.resources (every sidecar) requests 100m / 128Mi, limits 2000m / 1024Mi.
# - gateway: resources requests 100m / 128Mi, limits 2000m / 1024Mi; replicaCount unset,
#   autoscaling.enabled true, minReplicas 1.
# - argo-rollouts: controller.replicas 2, dashboard.enabled false; resources {} for both.
# - argo-workflows: controller.replicas 1, server.enabled true, server.replicas 1; controller,
#   server and executor (the `wait` container) resources {}.
# - cloudnative-pg, prometheus-pushgateway: replicaCount 1, resources {}.
# - external-secrets: replicaCount 1, webhook.create and certController.create true; resources {}.
# - kube-prometheus-stack: prometheus, alertmanager, prometheusOperator, grafana, kubeStateMetrics,
#   nodeExporter enabled; every resources {} (prometheusConfigReloader too); grafana's and
#   kube-state-metrics' resources and replicas 1, node-exporter's resources {} in the subcharts.
# - minio: mode distributed, replicas 16, resources.requests.memory 16Gi.
# - gitea: replicaCount 1, resources {}, initContainers.resources.requests 100m / 128Mi; postgresql-ha
#   (3 PostgreSQL + pgpool) and valkey-cluster (3 nodes) enabled, postgresql and valkey disabled.
CHART_WORKLOADS: dict[str, tuple[ChartWorkload, ...]] = {
    "base": (),
    "istiod": (ChartWorkload("istiod", "resources", "replicaCount",
                             resources_default={"requests": {"cpu": "500m", "memory": "2048Mi"}},
                             autoscaling=("autoscaleEnabled", True, "autoscaleMin", 1)),),
    "gateway": (ChartWorkload("istio-ingressgateway", "resources", "replicaCount",
                              resources_default={"requests": {"cpu": "100m", "memory": "128Mi"},
                                                 "limits": {"cpu": "2000m", "memory": "1024Mi"}},
                              autoscaling=("autoscaling.enabled", True, "autoscaling.minReplicas", 1)),),
    "argo-rollouts": (
        ChartWorkload("controller", "controller.resources", "controller.replicas", replicas_default=2),
        ChartWorkload("dashboard", "dashboard.resources", "dashboard.replicas", "dashboard.enabled",
                      enabled_default=False),
    ),
    "argo-workflows": (
        ChartWorkload("workflow-controller", "controller.resources", "controller.replicas"),
        ChartWorkload("server", "server.resources", "server.replicas", "server.enabled"),
    ),
    "cloudnative-pg": (ChartWorkload("operator", "resources", "replicaCount"),),
    "external-secrets": (
        ChartWorkload("controller", "resources", "replicaCount"),
        ChartWorkload("webhook", "webhook.resources", "webhook.replicaCount", "webhook.create"),
        ChartWorkload("cert-controller", "certController.resources", "certController.replicaCount",
                      "certController.create"),
    ),
    "kube-prometheus-stack": (
        ChartWorkload("prometheus", "prometheus.prometheusSpec.resources", "prometheus.prometheusSpec.replicas",
                      "prometheus.enabled", sidecars=("prometheusOperator.prometheusConfigReloader.resources",)),
        ChartWorkload("alertmanager", "alertmanager.alertmanagerSpec.resources",
                      "alertmanager.alertmanagerSpec.replicas", "alertmanager.enabled",
                      sidecars=("prometheusOperator.prometheusConfigReloader.resources",)),
        ChartWorkload("prometheus-operator", "prometheusOperator.resources", None, "prometheusOperator.enabled"),
        ChartWorkload("grafana", "grafana.resources", "grafana.replicas", "grafana.enabled",
                      sidecars=("grafana.sidecar.resources",)),
        ChartWorkload("kube-state-metrics", "kube-state-metrics.resources", "kube-state-metrics.replicas",
                      "kubeStateMetrics.enabled"),
        ChartWorkload("node-exporter", "prometheus-node-exporter.resources", None, "nodeExporter.enabled",
                      daemonset=True),
    ),
    # Standalone mode runs one pod whatever `replicas` says (templates/deployment.yaml).
    "minio": (ChartWorkload("minio", "resources", "replicas", replicas_default=16,
                            resources_default={"requests": {"memory": "16Gi"}}, single_when=("mode", "standalone")),),
    "prometheus-pushgateway": (ChartWorkload("pushgateway", "resources", "replicaCount"),),
    "gitea": (
        ChartWorkload("gitea", "resources", "replicaCount", init="initContainers.resources",
                      init_default={"requests": {"cpu": "100m", "memory": "128Mi"}}),
        ChartWorkload("postgresql", "postgresql.primary.resources", None, "postgresql.enabled"),
        ChartWorkload("valkey", "valkey.primary.resources", None, "valkey.enabled"),
        ChartWorkload("postgresql-ha", "postgresql-ha.postgresql.resources", "postgresql-ha.postgresql.replicaCount",
                      "postgresql-ha.enabled", replicas_default=3),
        ChartWorkload("valkey-cluster", "valkey-cluster.resources", "valkey-cluster.cluster.nodes",
                      "valkey-cluster.enabled", replicas_default=3),
    ),
}

# kind's own workloads, from upstream defaults (kubeadm's static pods and kind's manifests at
# kind 0.27 / Kubernetes 1.32).
UPSTREAM: tuple[tuple[str, str, int | str, Mapping[str, Any]], ...] = (
    ("kind", "kube-apiserver", 1, {"requests": {"cpu": "250m"}}),
    ("kind", "kube-controller-manager", 1, {"requests": {"cpu": "200m"}}),
    ("kind", "kube-scheduler", 1, {"requests": {"cpu": "100m"}}),
    ("kind", "etcd", 1, {"requests": {"cpu": "100m", "memory": "100Mi"}}),
    ("kind", "coredns", 2, {"requests": {"cpu": "100m", "memory": "70Mi"}, "limits": {"memory": "170Mi"}}),
    ("kind", "kindnet", "nodes", {"requests": {"cpu": "100m", "memory": "50Mi"},
                                  "limits": {"cpu": "100m", "memory": "50Mi"}}),
    ("kind", "kube-proxy", "nodes", {}),
    ("kind", "local-path-provisioner", 1, {}),
)

# Argo CD's workloads in its install manifest (v3.5.1): one pod each, no resources on any container.
ARGOCD_WORKLOADS = (
    "statefulset/argocd-application-controller",
    "deployment/argocd-applicationset-controller",
    "deployment/argocd-dex-server",
    "deployment/argocd-notifications-controller",
    "deployment/argocd-redis",
    "deployment/argocd-repo-server",
    "deployment/argocd-server",
)


# -------------------------------------------------------------------------------------------- pods


def pod_resources(pod_spec: Mapping[str, Any]) -> Resources:
    """A pod's effective requests: its containers and native sidecars, or its largest init container."""
    containers = [Resources.of(c.get("resources")) for c in pod_spec.get("containers") or []]
    inits = pod_spec.get("initContainers") or []
    sidecars = [Resources.of(c.get("resources")) for c in inits if c.get("restartPolicy") == "Always"]
    total = sum(containers + sidecars, Resources(cpu_limit_m=0, memory_limit=0, unset=True))
    for init in (c for c in inits if c.get("restartPolicy") != "Always"):
        res = Resources.of(init.get("resources"))
        total = Resources(max(total.cpu_m, res.cpu_m), max(total.memory, res.memory),
                          total.cpu_limit_m, total.memory_limit, total.unset and res.unset)
    return total


def _injected(pod_meta: Mapping[str, Any]) -> bool:
    annotations = pod_meta.get("annotations") or {}
    labels = pod_meta.get("labels") or {}
    return str(annotations.get("sidecar.istio.io/inject", labels.get("sidecar.istio.io/inject", ""))) != "false"


@dataclass
class _Context:
    root: Path
    kubectl: str
    nodes: int
    injected_namespaces: set[str]
    proxy: Resources
    executor: Resources = field(default_factory=lambda: ZERO)


def _workloads(docs: Iterable[Any], app: str, namespace: str, ctx: _Context) -> Iterator[Line]:
    hpa_min = {
        (d.get("spec") or {}).get("scaleTargetRef", {}).get("name"): int((d.get("spec") or {}).get("minReplicas", 1))
        for d in docs if isinstance(d, dict) and d.get("kind") == "HorizontalPodAutoscaler"
    }
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        kind, meta, spec = doc.get("kind"), doc.get("metadata") or {}, doc.get("spec") or {}
        ns = meta.get("namespace") or namespace
        name = f"{kind}/{meta.get('name')}"
        if kind in ("Deployment", "StatefulSet", "Rollout", "DaemonSet"):
            template = spec.get("template") or {}
            pods = ctx.nodes if kind == "DaemonSet" else int(spec.get("replicas", 1))
            if kind == "Rollout" and pods:
                pods = max(pods, hpa_min.get(meta.get("name"), 0))
            per_pod = pod_resources(template.get("spec") or {})
            if ns in ctx.injected_namespaces and _injected(template.get("metadata") or {}):
                per_pod = per_pod + ctx.proxy
            yield Line(app, name, pods, per_pod, "manifest")
        elif kind == "Cluster" and str(doc.get("apiVersion", "")).startswith("postgresql.cnpg.io/"):
            per_pod = Resources.of(spec.get("resources"))
            if ns in ctx.injected_namespaces and _injected(spec.get("inheritedMetadata") or {}):
                per_pod = per_pod + ctx.proxy
            yield Line(app, name, int(spec.get("instances", 1)), per_pod, "manifest")


def _chart_lines(app: str, chart: str, values: Mapping[str, Any], namespace: str, ctx: _Context) -> Iterator[Line]:
    if chart not in CHART_WORKLOADS:
        raise ValueError(f"Application {app}: chart {chart} has no workload table in CHART_WORKLOADS")
    if chart == "istiod" and isinstance(values.get("pilot"), Mapping):
        # templates/zzy_descope_legacy.yaml: everything under `pilot` is copied to the top level.
        values = merge(values, values["pilot"])
    for w in CHART_WORKLOADS[chart]:
        if w.enabled is not None and not bool(get(values, w.enabled, w.enabled_default)):
            continue
        set_here = get(values, w.resources, None)
        # Helm merges the values over the chart's defaults, map by map.
        per_pod = pod_resources({
            "containers": [{"resources": merge(w.resources_default, set_here or {})}]
            + [{"resources": get(values, sidecar, None)} for sidecar in w.sidecars],
            "initContainers": [{"resources": merge(w.init_default, get(values, w.init, None) or {})}] if w.init else [],
        })
        if namespace in ctx.injected_namespaces:
            per_pod = per_pod + ctx.proxy
        yield Line(app, f"{chart}/{w.name}", _chart_pods(w, values, ctx), per_pod,
                   "chart values" if set_here or not w.resources_default else "chart default")


def _chart_pods(w: ChartWorkload, values: Mapping[str, Any], ctx: _Context) -> int:
    if w.daemonset:
        return ctx.nodes
    if w.single_when is not None and get(values, w.single_when[0], None) == w.single_when[1]:
        return 1
    if w.autoscaling is not None:
        enabled, enabled_default, minimum, minimum_default = w.autoscaling
        if bool(get(values, enabled, enabled_default)):
            return int(get(values, minimum, minimum_default))
    return int(get(values, w.replicas, w.replicas_default) if w.replicas else 1)


def _pinned_copy(root: Path, tmp: Path, appset: Mapping[str, Any]) -> list[Path]:
    """The model folders as the ApplicationSet renders them, each pinned (its `unpinned` component dropped)."""
    copy = tmp / "serving" / "manifests"
    shutil.copytree(root / "serving" / "manifests", copy)
    kustomize = ((appset.get("spec") or {}).get("template", {}).get("spec", {}).get("source", {})
                 .get("kustomize") or {})
    folders = sorted(p.parent for p in copy.glob("models/*/*/kustomization.yaml"))
    for folder in folders:
        path = folder / "kustomization.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["components"] = [c for c in doc.get("components") or [] if not str(c).endswith("/unpinned")]
        if kustomize.get("patches"):
            doc["patches"] = [*(doc.get("patches") or []), *kustomize["patches"]]
        path.write_text(yaml.safe_dump(doc))
    return folders


def _app_namespace(app: Mapping[str, Any]) -> str:
    return str(((app.get("spec") or {}).get("destination") or {}).get("namespace", "default"))


def compute(root: Path, cluster: str, *, nodes: int = 2, kubectl: str = "kubectl") -> Footprint:
    """The footprint of ``clusters/<cluster>`` (see the module docstring for what is counted)."""
    docs = [d for d in render(root / "clusters" / cluster, kubectl) if isinstance(d, dict)]
    apps = [d for d in docs if d.get("kind") == "Application" and str(d.get("apiVersion", "")).startswith("argoproj")]
    namespaces = [d for d in render(root / "infra" / "namespaces", kubectl) if isinstance(d, dict)]
    injected = {str(n["metadata"]["name"]) for n in namespaces
                if n.get("kind") == "Namespace" and (n["metadata"].get("labels") or {}).get("istio-injection")
                == "enabled"}
    charts: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for app in apps:
        for chart, _version, values, _problems in app_values(Obj(app, Source(Path("clusters") / cluster, True)),
                                                             root):
            charts[app["metadata"]["name"]] = (chart, _app_namespace(app), values)
    istiod = next((v for c, _, v in charts.values() if c == "istiod"), {})
    proxy = Resources.of(get(istiod, "global.proxy.resources", None) or _PROXY_DEFAULT)
    workflows = next((v for c, _, v in charts.values() if c == "argo-workflows"), {})
    ctx = _Context(root, kubectl, nodes, injected, proxy, Resources.of(get(workflows, "executor.resources", None)))
    fp = Footprint(cluster, nodes)
    for app in apps:
        name = str(app["metadata"]["name"])
        if name in charts:
            chart, namespace, values = charts[name]
            fp.lines.extend(_chart_lines(name, chart, values, namespace, ctx))
            continue
        spec = app.get("spec") or {}
        for source in spec.get("sources") or [spec.get("source") or {}]:
            if "path" in source and "chart" not in source:
                rendered = render(root / str(source["path"]), kubectl)
                fp.lines.extend(_workloads(rendered, name, _app_namespace(app), ctx))
                if str(source["path"]).endswith("/workflow-templates"):
                    fp.lines.extend(_training(rendered, name, root, ctx))
    for appset in (d for d in docs if d.get("kind") == "ApplicationSet"):
        with tempfile.TemporaryDirectory() as tmp:
            for folder in _pinned_copy(root, Path(tmp), appset):
                env = folder.name
                label = f"{folder.parent.name}-{env}"
                fp.lines.extend(_workloads(render(folder, kubectl), label, f"models-{env}", ctx))
    # kind's own control plane exists on kind only (a cloud's is the provider's).
    for owner, workload, count, spec in UPSTREAM if cluster == "kind" else ():
        pods = nodes if count == "nodes" else int(count)
        fp.lines.append(Line(owner, workload, pods, Resources.of(spec), "upstream default"))
    fp.lines.extend(_argocd(root, cluster))
    return fp


def _argocd(root: Path, cluster: str) -> Iterator[Line]:
    path = upstream_sizes.argocd_file(root, cluster)
    sizes = upstream_sizes.load(path) if path.is_file() else {}
    unknown = sorted(set(sizes) - set(ARGOCD_WORKLOADS))
    if unknown:
        raise ValueError(f"{path}: not workloads of Argo CD's install manifest: {', '.join(unknown)}")
    for workload in ARGOCD_WORKLOADS:
        if workload in sizes:
            yield Line("argocd", workload, 1, Resources.of(sizes[workload]), upstream_sizes.ARGOCD_FILE)
        else:
            yield Line("argocd", workload, 1, Resources.of({}), "upstream default")


def _training(rendered: Sequence[Any], app: str, root: Path, ctx: _Context) -> Iterator[Line]:
    """One step pod of ``train`` per model (the largest step), Argo's wait container and the proxy."""
    models = sorted(p.stem for p in (root / "workflows" / "models").glob("*.yaml"))
    for doc in rendered:
        if isinstance(doc, dict) and doc.get("kind") == "WorkflowTemplate" and doc["metadata"]["name"] == "train":
            steps = [Resources.of((t.get("container") or t.get("script") or {}).get("resources"))
                     for t in doc["spec"].get("templates") or [] if t.get("container") or t.get("script")]
            largest = max(steps, key=lambda r: (r.memory, r.cpu_m))
            per_pod = largest + ctx.executor
            if "mlops" in ctx.injected_namespaces:
                per_pod = per_pod + ctx.proxy
            yield Line(app, "train step (one per model)", len(models), per_pod, "manifest", transient=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlops_gitops.manifests.footprint",
        description="Sum the CPU and memory requests and limits of everything a cluster of this repository runs; "
        "exit 1 when the requests exceed the target or the capacity given.")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("--cluster", default="kind")
    parser.add_argument("--nodes", type=int, default=2, help="nodes (DaemonSets run on each; kind: 2)")
    parser.add_argument("--capacity-cpus", type=float, default=None,
                        help="CPUs the nodes can give (e.g. `docker info`'s NCPU)")
    parser.add_argument("--capacity-memory", type=int, default=None, help="bytes the nodes can give")
    parser.add_argument("--target", action="store_true", help="also check the kind target (4 CPU, 8 GiB requests)")
    args = parser.parse_args(argv)
    fp = compute(args.root, args.cluster, nodes=args.nodes)
    print(fp.table())
    peak = fp.total()
    unset = fp.unset()
    if unset:
        print(f"requests unset (counted as 0): {', '.join(f'{x.application}/{x.workload}' for x in unset)}")
    failed = False
    if args.target and (peak.cpu_m > TARGET_CPU_M or peak.memory > TARGET_MEMORY):
        print(f"error: requests {_cpu(peak.cpu_m)} CPU / {_mem(peak.memory)} exceed the target "
              f"{_cpu(TARGET_CPU_M)} CPU / {_mem(TARGET_MEMORY)}", file=sys.stderr)
        failed = True
    if args.capacity_cpus is not None and peak.cpu_m > args.capacity_cpus * 1000:
        print(f"error: the platform requests {_cpu(peak.cpu_m)} CPU; Docker gives {args.capacity_cpus:g}. "
              "Give Docker more CPUs (Docker Desktop: Settings > Resources).", file=sys.stderr)
        failed = True
    if args.capacity_memory is not None and peak.memory > args.capacity_memory:
        print(f"error: the platform requests {_mem(peak.memory)} of memory; Docker gives "
              f"{_mem(args.capacity_memory)}. Give Docker more memory (Docker Desktop: Settings > Resources).",
              file=sys.stderr)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

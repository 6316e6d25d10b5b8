"""Prometheus as the Prometheus operator would configure it from the rendered monitoring objects.

- a PodMonitor becomes the scrape job ``podMonitor/<namespace>/<name>/<i>`` per endpoint, with its
  ``path``, ``honorLabels`` and interval (scaled, not below a floor); its targets are the pods the
  reconciler runs (``file_sd``, rewritten at every change) labelled as the operator labels them —
  ``namespace``, ``pod``, ``container``, ``endpoint`` and each ``podTargetLabels`` label
  (``rollouts-pod-template-hash`` → ``rollouts_pod_template_hash``). Scheme ``http``: there is no
  mesh mTLS on loopback (the ``istio-mtls`` scrape class is the only thing not translated);
- PrometheusRules become one rules file (``spec.groups`` as they are);
- the Pushgateway is scraped with ``honor_labels``, and alerts go to the local Alertmanager.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlops_platform.durations import parse_go_duration as parse_duration

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def label_name(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def rules_file(prometheus_rules: Sequence[Mapping[str, Any]], out: Path) -> Path:
    groups: list[Any] = []
    for rule in prometheus_rules:
        groups.extend(rule["spec"]["groups"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return out


@dataclass
class PodTarget:
    address: str  # host:port
    namespace: str
    pod: str
    container: str
    labels: dict[str, str]  # the pod's labels
    port_name: str


@dataclass
class PrometheusConfig:
    workdir: Path
    rules: Path
    pushgateway: str | None  # host:port
    alertmanager: str | None
    interval: str
    time_scale: float
    min_interval_s: float
    monitors: dict[str, dict[str, Any]] = field(default_factory=dict)  # job -> PodMonitor endpoint + selector

    def _interval(self, text: str | None) -> str:
        seconds = max(self.min_interval_s, parse_duration(text or "30s") * self.time_scale)
        return f"{int(seconds * 1000)}ms"

    def add_pod_monitor(self, monitor: Mapping[str, Any]) -> bool:
        """Add the jobs of a PodMonitor; True when the configuration changed."""
        changed = False
        meta = monitor["metadata"]
        for index, endpoint in enumerate(monitor["spec"]["podMetricsEndpoints"]):
            job = f"podMonitor/{meta['namespace']}/{meta['name']}/{index}"
            entry = {"endpoint": dict(endpoint), "namespace": meta["namespace"],
                     "selector": dict(monitor["spec"]["selector"].get("matchLabels") or {}),
                     "target_labels": list(monitor["spec"].get("podTargetLabels") or [])}
            if self.monitors.get(job) != entry:
                self.monitors[job] = entry
                changed = True
        return changed

    def targets_path(self, job: str) -> Path:
        return self.workdir / "targets" / (label_name(job) + ".json")

    def write_targets(self, pods: Sequence[PodTarget]) -> None:
        for job, entry in self.monitors.items():
            groups = []
            for pod in pods:
                if pod.namespace != entry["namespace"] or pod.port_name != entry["endpoint"].get("port"):
                    continue
                if any(pod.labels.get(k) != v for k, v in entry["selector"].items()):
                    continue
                labels = {"namespace": pod.namespace, "pod": pod.pod, "container": pod.container,
                          "endpoint": pod.port_name}
                for name in entry["target_labels"]:
                    if name in pod.labels:
                        labels[label_name(name)] = pod.labels[name]
                groups.append({"targets": [pod.address], "labels": labels})
            path = self.targets_path(job)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(groups))
            tmp.replace(path)

    def document(self) -> dict[str, Any]:
        scrape: list[dict[str, Any]] = []
        if self.pushgateway:
            scrape.append({"job_name": "pushgateway", "honor_labels": True,
                           "static_configs": [{"targets": [self.pushgateway]}]})
        for job, entry in sorted(self.monitors.items()):
            endpoint = entry["endpoint"]
            interval = self._interval(endpoint.get("interval"))
            path = self.targets_path(job)
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("[]")
            scrape.append({
                "job_name": job, "honor_labels": bool(endpoint.get("honorLabels", False)),
                "metrics_path": endpoint.get("path", "/metrics"), "scheme": "http",
                "scrape_interval": interval, "scrape_timeout": interval,
                "file_sd_configs": [{"files": [str(path)], "refresh_interval": "1s"}],
            })
        doc: dict[str, Any] = {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "rule_files": [str(self.rules)],
            "scrape_configs": scrape,
        }
        if self.alertmanager:
            doc["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [self.alertmanager]}]}]}
        return doc

    def write(self) -> Path:
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(self.document(), sort_keys=False))
        return path


def reload(prometheus_url: str) -> None:
    request = urllib.request.Request(f"{prometheus_url}/-/reload", method="POST")
    with _NO_PROXY.open(request, timeout=10):
        pass


def query(prometheus_url: str, promql: str) -> list[dict[str, Any]]:
    url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with _NO_PROXY.open(url, timeout=10) as response:
        result: list[dict[str, Any]] = json.loads(response.read())["data"]["result"]
    return result


def firing_alerts(prometheus_url: str) -> list[dict[str, Any]]:
    with _NO_PROXY.open(f"{prometheus_url}/api/v1/alerts", timeout=10) as response:
        alerts: list[dict[str, Any]] = json.loads(response.read())["data"]["alerts"]
    return [a for a in alerts if a.get("state") == "firing"]


def alertmanager_alerts(alertmanager_url: str) -> list[dict[str, Any]]:
    with _NO_PROXY.open(f"{alertmanager_url}/api/v2/alerts", timeout=10) as response:
        alerts: list[dict[str, Any]] = json.loads(response.read())
    return alerts


__all__ = ["PodTarget", "PrometheusConfig", "alertmanager_alerts", "firing_alerts", "label_name", "query",
           "reload", "rules_file"]

"""The rollout runner: Argo Rollouts' canary for a rendered Rollout, on the local cluster.

Semantics kept from Argo Rollouts (canary strategy with Istio host-level traffic routing):

- a Rollout whose stable ReplicaSet runs no pods (a fresh environment, or ``replicas: 0`` before)
  is promoted fully without steps, as the first ReplicaSet of a Rollout; ``replicas: 0`` stops all;
- a new pod-template hash starts the canary ReplicaSet; the canary Service selects it, the stable
  Service the stable one; then the steps in order: ``setWeight`` writes the weights of the routes
  the Rollout names into the VirtualService (pushed to Envoy), ``pause`` waits its duration (scaled;
  a pause without duration is an indefinite pause: the Rollout stays Paused), ``analysis`` runs its
  templates with the step's args (``value``, ``fieldRef`` on the Rollout, ``podTemplateHashValue``
  Latest/Stable) — Prometheus metrics with :func:`mlops_gitops.analysis.run_analysis`, job
  metrics as the Job's pod (:mod:`mlops_local.podspec`), Successful when the Job exits 0;
- Failed or Error aborts: all traffic back to stable at once, the canary scaled down after
  ``abortScaleDownDelaySeconds``, phase Degraded, event ``aborted``; Inconclusive pauses (Paused);
- after the last step the canary becomes stable (Services and weights 100/0), the old stable
  ReplicaSet is scaled down after ``scaleDownDelaySeconds`` (default 30 s), phase Healthy, event
  ``completed``;
- a template equal to the stable one (a revert) goes back to stable at once, without steps.

Every duration taken from the manifests is multiplied by ``LocalSettings.time_scale``: pauses,
analysis ``interval``/``initialDelay``, duration-valued args (``window``, ``interval``) and
scale-down delays. The traffic share that reaches the canary through Envoy is measured at each
``setWeight`` (the whole time the weight holds, its pause and analysis included); a ``setWeight``
step completes once at least ``LocalSettings.step_requests`` answers were counted at that weight, so
the scaled pause and analysis that follow always see traffic at it.
"""

from __future__ import annotations

import copy
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_gitops.analysis.runner import (
    AnalysisResult,
    Measurement,
    Metric,
    MetricResult,
    resolve_metrics,
    run_analysis,
    substitute_args,
    worse,
)
from mlops_local.cluster import App, LocalCluster, pod_template_hash
from mlops_local.settings import LocalSettings
from mlops_local.state import StateFile
from mlops_local.traffic import TrafficClient, Window
from mlops_platform.durations import is_go_duration
from mlops_platform.durations import parse_go_duration as parse_duration
from mlops_platform.errors import ConfigError

_FIELD = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")

Outcome = str  # "completed" | "aborted" | "paused" | "" (nothing happened)


@dataclass
class Result:
    outcome: Outcome
    rollout: dict[str, Any]


def scale_duration(text: str, factor: float) -> str:
    return f"{max(1, round(parse_duration(text) * factor * 1000))}ms"


def _field(rollout: Mapping[str, Any], path: str) -> str:
    if path == "metadata.namespace":
        return str(rollout["metadata"]["namespace"])
    if path == "metadata.name":
        return str(rollout["metadata"]["name"])
    match = _FIELD.match(path)
    if match is None:
        raise ConfigError(f"analysis arg fieldRef {path!r} is not supported")
    return str((rollout["metadata"].get(match.group(1)) or {})[match.group(2)])


class RolloutRunner:
    def __init__(self, settings: LocalSettings, cluster: LocalCluster, traffic: TrafficClient, state: StateFile,
                 say: Callable[[str], None], jobs_cwd: Path) -> None:
        self.settings = settings
        self.cluster = cluster
        self.traffic = traffic
        self.state = state
        self.say = say
        self.jobs_cwd = jobs_cwd

    # -- helpers -----------------------------------------------------------------------------

    def _set_weight(self, app: App, canary_weight: int) -> None:
        canary = app.rollout()["spec"]["strategy"]["canary"]
        istio = canary["trafficRouting"]["istio"]["virtualService"]
        weights = {canary["stableService"]: 100 - canary_weight, canary["canaryService"]: canary_weight}
        assert app.virtual_service is not None
        vs = copy.deepcopy(app.virtual_service)
        for route in vs["spec"]["http"]:
            if route.get("name") in istio["routes"]:
                for dest in route["route"]:
                    dest["weight"] = weights[dest["destination"]["host"]]
        app.virtual_service = vs
        self.cluster.push()

    def _record(self, app: App, doc: dict[str, Any], *, finished: bool = False) -> None:
        self.state.put(doc, finished=finished)

    def _base_doc(self, app: App, phase: str) -> dict[str, Any]:
        rollout = app.rollout()
        return {"name": rollout["metadata"]["name"], "namespace": app.namespace, "model": app.model,
                "env": app.env, "revision": app.revision, "phase": phase, "commit": app.commit[:12],
                "stable": None, "canary": None, "steps": [], "message": "", "outcome": None}

    # -- reconcile ---------------------------------------------------------------------------

    def reconcile(self, app: App) -> Result:
        rollout = app.rollout()
        spec = rollout["spec"]
        canary = spec["strategy"]["canary"]
        desired = pod_template_hash(spec["template"])
        stable_hash = app.selectors.get(canary["stableService"])
        stable = app.replicasets.get(stable_hash or "")
        doc = self._base_doc(app, "Healthy")
        if int(spec.get("replicas", 1)) == 0:
            for rs_hash in list(app.replicasets):
                self.cluster.stop_replicaset(app, rs_hash)
            app.selectors.clear()
            doc["message"] = "replicas: 0 (nothing pinned): no pods"
            self._record(app, doc)
            return Result("", doc)
        if stable is not None and desired == stable.hash:
            leftovers = [h for h in app.replicasets if h != desired]
            self._set_weight(app, 0)
            for rs_hash in leftovers:
                self.cluster.stop_replicaset(app, rs_hash)
            app.selectors[canary["canaryService"]] = desired
            doc["stable"] = {"hash": desired, "version": stable.version}
            doc["message"] = "the template is the stable one: no steps" + (" (canary removed)" if leftovers else "")
            self._record(app, doc)
            return Result("", doc)
        app.revision += 1
        doc["revision"] = app.revision
        if stable is None:
            self.say(f"{app.namespace}/{rollout['metadata']['name']}: no stable pods: the first ReplicaSet "
                     f"({desired}) is promoted fully")
            rs = self.cluster.start_replicaset(app, desired)
            app.selectors[canary["stableService"]] = desired
            app.selectors[canary["canaryService"]] = desired
            self._set_weight(app, 0)
            doc["stable"] = {"hash": desired, "version": rs.version}
            doc["message"] = "first ReplicaSet: promoted fully without steps"
            doc["outcome"] = "completed"
            self._record(app, doc, finished=True)
            return Result("completed", doc)
        return self._canary(app, rollout, stable.hash, stable.version, desired, doc)

    def _canary(self, app: App, rollout: dict[str, Any], stable_hash: str, stable_version: str, desired: str,
                doc: dict[str, Any]) -> Result:
        canary = rollout["spec"]["strategy"]["canary"]
        doc["phase"] = "Progressing"
        doc["stable"] = {"hash": stable_hash, "version": stable_version}
        steps = canary.get("steps") or []
        doc["steps"] = [{"index": i + 1, "action": self._action(step), "status": "Pending", "weight": None,
                         "requests": 0, "canary_requests": 0, "share": None, "metrics": []}
                        for i, step in enumerate(steps)]
        self._record(app, doc)
        rs = self.cluster.start_replicaset(app, desired)
        doc["canary"] = {"hash": desired, "version": rs.version}
        app.selectors[canary["canaryService"]] = desired
        host = self.cluster.ingress_host(app)
        window: Window | None = None
        current: dict[str, Any] | None = None
        if host is not None:
            self.traffic.set_rate(host, self.settings.canary_rps)
        outcome: Outcome = "completed"
        try:
            for index, step in enumerate(steps):
                entry = doc["steps"][index]
                entry["status"] = "Running"
                self._record(app, doc)
                if "setWeight" in step:
                    if window is not None and host is not None and current is not None:
                        self._close(host, window, current, rs.version)
                        window = current = None
                    weight = int(step["setWeight"])
                    self._set_weight(app, weight)
                    entry["weight"] = weight
                    if host is not None:
                        window, current = self.traffic.open_window(host), entry
                        self._measure(app, doc, window, entry, rs.version)
                    entry["status"] = "Successful"
                elif "pause" in step:
                    duration = (step["pause"] or {}).get("duration")
                    if duration is None:
                        entry["status"] = "Paused"
                        doc["phase"], doc["message"] = "Paused", "indefinite pause: promote or abort by hand"
                        outcome = "paused"
                        break
                    self._sleep(app, doc, window, current, rs.version,
                                parse_duration(str(duration)) * self.settings.time_scale)
                    entry["status"] = "Successful"
                elif "analysis" in step:
                    result = self._analysis(app, rollout, step["analysis"], stable_hash, desired, entry, doc)
                    entry["status"] = result
                    if result in ("Failed", "Error"):
                        outcome = "aborted"
                        doc["message"] = f"analysis of step {index + 1} {result}: aborted"
                        break
                    if result == "Inconclusive":
                        outcome = "paused"
                        doc["phase"], doc["message"] = "Paused", f"analysis of step {index + 1} Inconclusive"
                        break
                else:
                    raise ConfigError(f"canary step {step} is not supported by the local runner")
                self._record(app, doc)
        finally:
            if window is not None and host is not None and current is not None:
                self._close(host, window, current, rs.version)
            if host is not None:
                self.traffic.set_rate(host, self.settings.background_rps)
        for entry in doc["steps"]:
            if entry["status"] in ("Pending", "Running"):
                entry["status"] = "Skipped" if outcome != "completed" else entry["status"]
        if outcome == "aborted":
            self._abort(app, rollout, desired, doc)
        elif outcome == "completed":
            self._promote(app, rollout, stable_hash, desired, doc)
        doc["outcome"] = outcome
        self._record(app, doc, finished=True)
        return Result(outcome, doc)

    def _abort(self, app: App, rollout: dict[str, Any], desired: str, doc: dict[str, Any]) -> None:
        canary = rollout["spec"]["strategy"]["canary"]
        started = time.monotonic()
        self._set_weight(app, 0)  # all traffic back to stable at once
        doc["abort_to_stable_s"] = round(time.monotonic() - started, 3)
        doc["phase"] = "Degraded"
        self._record(app, doc)
        host = self.cluster.ingress_host(app)
        if host is not None:  # what the clients get right after the abort: the stable version only
            window = self.traffic.open_window(host)
            deadline = time.monotonic() + 30
            while window.total < 200 and time.monotonic() < deadline:
                time.sleep(0.05)
            self.traffic.close_window(host, window)
            version = (doc.get("canary") or {}).get("version", "")
            doc["after_abort"] = {"requests": window.total, "canary_answers": window.versions[str(version)],
                                  "errors": window.total - window.statuses[200]}
        delay = float(canary.get("abortScaleDownDelaySeconds", 30)) * self.settings.time_scale
        time.sleep(delay)
        self.cluster.stop_replicaset(app, desired)
        app.selectors[canary["canaryService"]] = app.selectors[canary["stableService"]]
        self.cluster.push()

    def _promote(self, app: App, rollout: dict[str, Any], stable_hash: str, desired: str, doc: dict[str, Any]) -> None:
        canary = rollout["spec"]["strategy"]["canary"]
        app.selectors[canary["stableService"]] = desired
        self._set_weight(app, 0)  # stable (now the new ReplicaSet) 100, canary 0
        delay = float(canary.get("scaleDownDelaySeconds", 30)) * self.settings.time_scale
        time.sleep(delay)
        self.cluster.stop_replicaset(app, stable_hash)
        doc["stable"], doc["canary"] = doc["canary"], None
        doc["phase"], doc["message"] = "Healthy", "canary promoted: it is the stable ReplicaSet now"

    # -- traffic measurement -------------------------------------------------------------------

    def _close(self, host: str, window: Window, entry: dict[str, Any], version: str) -> None:
        self.traffic.close_window(host, window)
        self._fill(window, entry, version)

    @staticmethod
    def _fill(window: Window, entry: dict[str, Any], version: str) -> None:
        entry["requests"] = window.total
        entry["canary_requests"] = window.versions[version]
        entry["errors"] = window.total - window.statuses[200]
        entry["share"] = window.share(version)

    def _measure(self, app: App, doc: dict[str, Any], window: Window, entry: dict[str, Any], version: str) -> None:
        """Stay at this weight until the traffic client has counted ``step_requests`` answers."""
        deadline = time.monotonic() + 300
        while window.total < self.settings.step_requests and time.monotonic() < deadline:
            time.sleep(0.25)
            self._fill(window, entry, version)
            self._record(app, doc)

    def _sleep(self, app: App, doc: dict[str, Any], window: Window | None, entry: dict[str, Any] | None,
               version: str, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(0.5, left))
            if window is not None and entry is not None:
                self._fill(window, entry, version)
            self._record(app, doc)

    # -- analysis -------------------------------------------------------------------------------

    @staticmethod
    def _action(step: Mapping[str, Any]) -> str:
        if "setWeight" in step:
            return f"setWeight {step['setWeight']}"
        if "pause" in step:
            return f"pause {(step['pause'] or {}).get('duration', '∞')}"
        if "analysis" in step:
            return f"analysis ({len(step['analysis'].get('templates', []))} templates)"
        return str(next(iter(step)))

    def _args(self, rollout: Mapping[str, Any], analysis: Mapping[str, Any], stable_hash: str,
              canary_hash: str) -> dict[str, str]:
        args: dict[str, str] = {}
        for arg in analysis.get("args") or []:
            if "value" in arg:
                value = str(arg["value"])
                args[arg["name"]] = scale_duration(value, self.settings.time_scale) if is_go_duration(value) \
                    else value
            elif "fieldRef" in (arg.get("valueFrom") or {}):
                args[arg["name"]] = _field(rollout, str(arg["valueFrom"]["fieldRef"]["fieldPath"]))
            elif "podTemplateHashValue" in (arg.get("valueFrom") or {}):
                which = arg["valueFrom"]["podTemplateHashValue"]
                args[arg["name"]] = canary_hash if which == "Latest" else stable_hash
            else:
                raise ConfigError(f"analysis arg {arg.get('name')!r}: only value, fieldRef and podTemplateHashValue")
        return args

    def _analysis(self, app: App, rollout: dict[str, Any], analysis: Mapping[str, Any], stable_hash: str,
                  canary_hash: str, entry: dict[str, Any], doc: dict[str, Any]) -> str:
        assert app.rendered is not None
        args = self._args(rollout, analysis, stable_hash, canary_hash)
        by_name = {t["metadata"]["name"]: t for t in app.rendered.of_kind("AnalysisTemplate")}
        templates = [by_name[t["templateName"]] for t in analysis.get("templates") or []]
        prometheus = [t for t in templates if all("prometheus" in m.get("provider", {}) for m in t["spec"]["metrics"])]
        jobs = [t for t in templates if t not in prometheus]
        rows: dict[str, dict[str, Any]] = {}
        lock = threading.Lock()

        def show(metric: Metric, measurement: Measurement) -> None:
            with lock:
                rows[metric.name] = {"name": metric.name, "phase": "Running", "value": measurement.value}
                entry["metrics"] = list(rows.values())
            self._record(app, doc)

        job_phase: list[str] = []

        def run_jobs() -> None:
            for template in jobs:
                for metric in template["spec"]["metrics"]:
                    phase = self._job_metric(app, template, metric, args)
                    with lock:
                        rows[metric["name"]] = {"name": metric["name"], "phase": phase, "value": ""}
                        entry["metrics"] = list(rows.values())
                    job_phase.append(phase)

        thread = threading.Thread(target=run_jobs, daemon=True)
        thread.start()
        phase = "Successful"
        if prometheus:
            scaled = [self._scale_metric(m) for m in resolve_metrics(prometheus, args, self.cluster.prometheus_url)]
            result: AnalysisResult = run_analysis(scaled, on_measurement=show)
            for metric_result in result.metrics:
                rows[metric_result.name] = self._row(metric_result)
            entry["metrics"] = list(rows.values())
            phase = result.phase
        thread.join()
        for one in job_phase:
            phase = worse(phase, one)  # type: ignore[arg-type]
        self._record(app, doc)
        return phase

    def _scale_metric(self, metric: Metric) -> Metric:
        factor = self.settings.time_scale
        return Metric(**{**metric.__dict__,
                         "interval_s": None if metric.interval_s is None else metric.interval_s * factor,
                         "initial_delay_s": metric.initial_delay_s * factor})

    @staticmethod
    def _row(result: MetricResult) -> dict[str, Any]:
        values = [m.value for m in result.measurements]
        return {"name": result.name, "phase": result.phase, "value": ",".join(values[-3:])}

    def _job_metric(self, app: App, template: Mapping[str, Any], metric: Mapping[str, Any],
                    args: Mapping[str, str]) -> str:
        assert app.rendered is not None
        declared = {a["name"]: a.get("value") for a in template["spec"].get("args") or []}
        values = {k: str(v) for k, v in declared.items() if v is not None}
        values.update({k: v for k, v in args.items() if k in declared})
        spec = substitute_args(metric["provider"]["job"], values)
        pod = app.rendered.job_container(spec, secrets=self.cluster.secrets)
        job_dir = self.settings.home / "jobs" / f"{metric['name']}-{int(time.time() * 1000)}"
        tmp = job_dir / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        container = spec["spec"]["template"]["spec"]["containers"][0]
        extra = {m["mountPath"]: str(tmp) for m in container.get("volumeMounts", [])}
        extra.update(self.cluster.service_urls(app))
        local = self.cluster._overrides(pod, extra)
        deadline = float(spec["spec"].get("activeDeadlineSeconds", 600))
        result = local.run(cwd=job_dir, timeout=deadline)
        (job_dir / "job.log").write_text(f"$ {' '.join(local.argv)}\n{result.stdout}{result.stderr}"
                                         f"[exit {result.returncode}]\n")
        self.say(f"    job {metric['name']}: exit {result.returncode} ({job_dir / 'job.log'})")
        return "Successful" if result.returncode == 0 else "Failed"


__all__ = ["Result", "RolloutRunner", "scale_duration"]

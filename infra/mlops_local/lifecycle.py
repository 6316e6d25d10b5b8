"""``mlops lifecycle``: the whole model lifecycle on one machine, with the cluster's manifests and CLI.

Phases: start the services; train v1 and promote it to staging and production through pull requests
(first pins: no canary); train v2 and promote it through a staging and a production canary (Envoy
weights, Prometheus analysis, the staging holdout-replay Job); train a faulty v3 (a loosened gate lets
a one-split stump through training) whose staging canary aborts and opens the revert pull request by
itself; score a CSV in batch; send shifted traffic, run the drift check (exit 10), see the drift alert
fire in Prometheus and Alertmanager and run the retraining branch; print the summary table.

Every job runs from its rendered WorkflowTemplate through the local Argo Workflows stand-in
(:mod:`mlops_local.workflows`, with its Argo Server API in :mod:`mlops_local.argoserver`): each
training is the ``train`` workflow (v1's ``promote`` task opens the staging pull request; v2 and v3
are submitted with ``promote-to=none`` and promoted by the bot's CLI as an operator would, since the
scenario lands them one after the other), batch scoring and the drift check are their CronWorkflows
submitted at once (``argo submit --from cronwf/...``), the drift check's ``retrain`` step submits the
``train`` workflow through the Argo Server API with its ServiceAccount's token, and each canary's
outcome runs the ``rollout-outcome`` workflow. A version with other hyperparameters is the train
workflow with a jobs image whose model config differs (``/app/workflows/models`` is a folder holding
that config), as a commit to ``workflows/models/`` would build it.

Each promotion is the bot (branch, push to the Git server, pull request with the model card on the
local host), merged by this command as a reviewer would (the host's merge endpoint); the reconciler
then syncs the Application and the rollout runner runs the Rollout.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from mlops_local.argoserver import serve_argo
from mlops_local.cluster import App, LocalCluster, generate_secrets
from mlops_local.monitoring import alertmanager_alerts, firing_alerts, query
from mlops_local.platform import BINARIES, BOT_USER, Platform, missing_binaries, start_platform
from mlops_local.procs import run_logged, stop_descendants
from mlops_local.rollout import RolloutRunner
from mlops_local.settings import LocalSettings
from mlops_local.state import StateFile, format_rollout
from mlops_local.traffic import TrafficClient
from mlops_local.workflows import LocalArgo, Workflow
from mlops_platform.errors import GateFailedError, MlopsError, ServiceUnavailableError
from mlops_platform.exit_status import ExitStatus
from mlops_platform.registry_names import TAG_GATE

WORKFLOWS_OVERLAY = Path("clusters") / "kind" / "workflow-templates"
LEAKY = ("MLFLOW_", "MLOPS_", "AWS_", "GITHUB_", "GIT_")


@dataclass
class Scenario:
    """What to train and how: the model's training config and the ``--set`` overrides of each version."""

    config: Path
    retrain_sets: list[str] = field(default_factory=lambda: [
        "estimator.params.n_estimators=300", "estimator.params.max_depth=4"])
    faulty_sets: list[str] = field(default_factory=lambda: [
        "estimator.params.n_estimators=1", "estimator.params.max_depth=1",
        "gate.min.accuracy=0.3", "gate.min.f1_macro=0.2", "gate.min.roc_auc_ovr=0.5", "gate.max.log_loss=100",
        "gate.tolerance.accuracy=1", "gate.tolerance.f1_macro=1"])
    shift_columns: int = 3
    shift_factor: float = 1.5
    drift_rows: int = 1500


class Lifecycle:
    def __init__(self, settings: LocalSettings, repo: Path, scenario: Scenario) -> None:
        settings.home = settings.home.resolve()  # pods run in their own folders
        self.settings = settings
        self.repo = repo
        self.scenario = scenario
        self.model = str(yaml.safe_load(scenario.config.read_text())["model_name"])
        self.started = time.monotonic()
        self.summary: dict[str, Any] = {"versions": [], "pull_requests": [], "canaries": [], "drift": {},
                                        "alerts": [], "artifacts": {}, "aliases": [], "urls": {},
                                        "workflows": []}
        self.home = settings.home.resolve()
        self.columns: list[str] = []
        self.trainer: threading.Thread | None = None
        self.rows: list[list[float]] = []

    # -- output ------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}] {text}", flush=True)

    def phase(self, text: str) -> None:
        print(flush=True)
        self.say(f"\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"== {text}")

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> int:
        missing = missing_binaries()
        if missing:
            for exc in missing:
                print(f"missing: {exc} — needed for {BINARIES[exc.name][1]}", file=sys.stderr)
            required = os.environ.get("MLOPS_REQUIRE_INTEGRATION") == "1"
            print("the lifecycle needs every one of them; nothing was started" +
                  (" (MLOPS_REQUIRE_INTEGRATION=1)" if required else ""), file=sys.stderr)
            return ExitStatus.INVALID_INPUT
        if self.home.exists():
            shutil.rmtree(self.home)
            self.say(f"starting clean: removed the previous run's {self.home}")
        else:
            self.say(f"starting clean in {self.home}")
        self.home.mkdir(parents=True)
        with _signals_as_interrupt():
            try:
                with start_platform(self.settings, self.repo, self.say) as platform:
                    return self._run(platform)
            except KeyboardInterrupt:
                self.say("interrupted")
                return ExitStatus.INTERRUPTED
            finally:
                left = stop_descendants()  # commands of background threads (training, analysis jobs)
                self.say("stopped every process this command started" +
                         (f" ({len(left)} still running at the end were stopped)" if left else ""))

    def _run(self, platform: Platform) -> int:
        self.phase("services up")
        for name, url in platform.urls():
            self.say(f"  {name:<14} {url}")
        self.platform = platform
        self.cli_env = self._cli_env(platform)
        self.log = self.home / "logs" / "commands.log"
        self.api_key, client_line = _key()
        replay_key, replay_line = _key()
        store = generate_secrets(self.repo, {
            "model-api-keys": {"api-keys": f"{client_line}\n{replay_line}\n"},
            "model-replay-api-key": {"api-key": replay_key},
            "promotion-bot-git": {"GIT_USERNAME": BOT_USER, "GITHUB_TOKEN": platform.token},
        })
        git_env = self._git_env(platform)
        self._clone(platform.repo_url, self.home / "bot-clone", git_env)
        self._clone(platform.repo_url, self.home / "argocd-clone", git_env)
        services = {"http://mlflow.mlops.svc.cluster.local:5000": platform.mlflow_url,
                    "http://prometheus-operated.monitoring.svc:9090": platform.prometheus_url}
        self.objectstore = self.home / "objectstore"
        self.argo = LocalArgo.from_overlay(
            self.repo / WORKFLOWS_OVERLAY, self.repo,
            {"mlops.io/git-repo": platform.repo_url, "mlops.io/git-revision": "main",
             "mlops.io/git-repository": platform.prhost.slug},
            workdir=self.home / "workflows", secrets=store, objectstore=self.objectstore,
            time_scale=self.settings.time_scale, log=self.log,
            services={**services,
                      "http://prometheus-pushgateway.monitoring.svc.cluster.local:9091": platform.pushgateway_url,
                      "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090":
                          platform.prometheus_url},
            image_paths={"/app/workflows/models": str(self._image_models([], "v1"))},
            # kind's overlay names its in-cluster Gitea; the local pull-request host speaks GitHub's API.
            env_replacements={"MLOPS_PROMOTE_HOST": "github", "MLOPS_PROMOTE_API_URL": platform.prhost.url})
        with serve_argo(self.argo) as argo_url:
            self.argo.services["http://argo-workflows-server.argo.svc.cluster.local:2746"] = argo_url
            self.say(f"  {'argo-server':<14} {argo_url} (the local Argo Workflows stand-in's API)")
            return self._run_with(platform, services, store, git_env)

    def _run_with(self, platform: Platform, services: dict[str, str], store: dict[str, dict[str, str]],
                  git_env: dict[str, str]) -> int:
        self.cluster = LocalCluster(self.settings, self.repo, self.home / "argocd-clone", platform.supervisor,
                                    platform.envoy, platform.prometheus, platform.prometheus_url, services, store,
                                    git_env)
        self.state = StateFile(self.settings.state_file.resolve())
        self.traffic = TrafficClient(platform.envoy.url, self.api_key, self.settings.client_threads)
        self.runner = RolloutRunner(self.settings, self.cluster, self.traffic, self.state, self.say,
                                    self.home / "jobs")
        self.phase("Argo CD: first sync of the models' Applications")
        commit = self.cluster.fetch()
        for app in self.cluster.discover():
            self.cluster.sync(app, commit)
            result = self.runner.reconcile(app)
            self.say(f"  {app.name}: {result.rollout['message'] or result.rollout['phase']}")
        self.cluster.push()
        platform.wait_mlflow(self.settings.startup_timeout_s)
        self.say("  MLflow is ready")
        self.traffic.start()
        try:
            self._scenario()
        except MlopsError:
            with contextlib.suppress(OSError, ValueError, KeyError):
                for alert in firing_alerts(platform.prometheus_url):
                    self.say(f"  firing when it failed: {alert['labels']} value {alert.get('value')}")
            raise
        finally:
            self.traffic.stop()
            if self.trainer is not None:
                self.trainer.join()
        self._summary()
        return ExitStatus.OK if self._checks() else ExitStatus.UNEXPECTED

    def _scenario(self) -> None:
        self.phase(f"train {self.model} v1: the train workflow ({self.scenario.config}, promote-to=staging)")
        v1 = self._train([], promote_to="staging")
        # The next two versions train in the background (as their own workflows would) while v1 lands;
        # each promotion names its version, so the moving `candidate` alias does not matter.
        later: list[int | BaseException] = []

        def train_later() -> None:
            try:
                later.append(self._train(self.scenario.retrain_sets, quiet=True))
                later.append(self._train(self.scenario.faulty_sets, quiet=True))
            except BaseException as exc:  # reported by the main thread
                later.append(exc)

        self.say(f"  v2 ({' '.join(self.scenario.retrain_sets)}) and a faulty v3 (a loosened gate lets "
                 f"{' '.join(self.scenario.faulty_sets[:2])} through) train in the background")
        self.trainer = threading.Thread(target=train_later, daemon=True)
        self.trainer.start()
        self._land(v1, "staging", opened_by_workflow=True)
        self._land(v1, "production")
        v2, v3 = self._trained(later, 0), self._trained(later, 1)
        self._land(v2, "staging")
        self._land(v2, "production")
        self._land(v3, "staging", expect="aborted")
        self._batch_and_drift()
        for workflow in self.argo.find(lambda w: not w.done.is_set()):
            self.say(f"  waiting for workflow {workflow.name} to finish")
            self.argo.wait(workflow, 600)

    def _trained(self, later: list[int | BaseException], index: int) -> int:
        assert self.trainer is not None
        while len(later) <= index and self.trainer.is_alive():
            time.sleep(0.2)
        if len(later) <= index:
            raise MlopsError("background training ended without a version")
        value = later[index]
        if isinstance(value, BaseException):
            raise value
        facts = next(v for v in self.summary["versions"] if v["version"] == value)
        self.say(f"registered v{value} (background training): gate={facts['gate']}, {' '.join(facts['sets'])}")
        return value

    # -- steps ---------------------------------------------------------------------------------

    def _mlops(self, *args: str, env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)
               ) -> subprocess.CompletedProcess[str]:
        result = run_logged([sys.executable, "-m", "mlops_workflows.cli", *args], self.log, cwd=self.repo,
                            env=env or self.cli_env)
        if result.returncode not in ok:
            raise MlopsError(f"mlops {' '.join(args[:3])} exited {result.returncode}:\n"
                             f"{(result.stdout + result.stderr).strip()[-2000:]}")
        return result

    def _image_models(self, sets: list[str], tag: str) -> Path:
        """The jobs image's ``/app/workflows/models`` for a training: the scenario's config with ``sets``
        applied (what a commit to the model's config would build into the image)."""
        config = yaml.safe_load(self.scenario.config.read_text())
        for assignment in sets:
            key, _, value = assignment.partition("=")
            node = config
            *parents, last = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = yaml.safe_load(value)
        folder = self.home / "images" / tag / "workflows" / "models"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{self.model}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        return folder

    def _workflow(self, template: str, parameters: dict[str, str], **kwargs: Any) -> Workflow:
        workflow = self.argo.submit(template, parameters, **kwargs)
        self.summary["workflows"].append(workflow)
        return workflow

    def _train(self, sets: list[str], quiet: bool = False, promote_to: str = "none") -> int:
        tag = f"train-{len(self.summary['versions']) + 1}"
        workflow = self._workflow("train", {"model": self.model, "promote-to": promote_to},
                                  image_paths={"/app/workflows/models": str(self._image_models(sets, tag))},
                                  submitted_by="mlops lifecycle (argo submit --from workflowtemplate/train)")
        train = workflow.node("train")
        if not quiet:
            self._say_workflow(workflow)
        found = re.search(rf"^{re.escape(self.model)} v(\d+)\s+gate", train.result, re.MULTILINE)
        if found is None:
            raise MlopsError(f"the train workflow {workflow.name} registered no version ({workflow.phase}: "
                             f"{workflow.message}):\n{train.result[-1000:]}")
        if workflow.phase != "Succeeded":
            raise MlopsError(f"the train workflow {workflow.name} ended {workflow.phase}: {workflow.message}")
        registry = self._registry()
        mv = registry.get_version(self.model, version=int(found.group(1)))
        tags = mv.tags or {}
        self.summary["versions"].append({"version": int(mv.version), "gate": tags.get(TAG_GATE),
                                         "sets": sets, "run_id": mv.run_id, "workflow": workflow.name})
        if not quiet:
            self.say(f"registered v{mv.version}: gate={tags.get(TAG_GATE)}")
        if not self.rows:
            self.columns, self.rows = _holdout_rows(registry, self.model, int(mv.version))
        return int(mv.version)

    def _say_workflow(self, workflow: Workflow) -> None:
        self.say(f"  workflow {workflow.name} ({workflow.source}): {workflow.phase}"
                 + (f" — {workflow.message}" if workflow.message and workflow.phase != "Succeeded" else ""))
        for node in workflow.pods():
            exit_text = "" if node.exit_code is None else f" exit {node.exit_code}"
            retries = f", {node.attempts} attempts" if node.attempts > 1 else ""
            command = " ".join(node.command)
            self.say(f"    {node.name:<18} {node.phase:<9}{exit_text}{retries}  {command or node.message}")

    def _land(self, version: int, env: str, expect: str = "completed", opened_by_workflow: bool = False) -> None:
        self.phase(f"promote {self.model} v{version} to {env}")
        if opened_by_workflow:
            self.say("  the train workflow's promote step opened the pull request")
        else:
            chosen = ["--version", str(version)] if env == "staging" else ["--from-alias", "staging"]
            out = self._mlops("promote", self.model, "--to", env, *chosen).stdout
            for line in out.strip().splitlines()[-3:]:
                self.say(f"  bot: {line}")
        branch = f"promote/{self.model}/{env}/v{version}"
        prs = [p for p in self.platform.prhost.of_state("open") if p["head"]["ref"] == branch]
        if len(prs) != 1:
            raise MlopsError(f"expected one open pull request from {branch}, found {len(prs)}")
        pr = prs[0]
        sha = self.platform.prhost.merge(int(pr["number"]))
        self.say(f"  reviewer merged #{pr['number']} ({branch}) as {sha[:12]}: {self.platform.prhost.url}/pull/"
                 f"{pr['number']}")
        self._record_pr(pr, "promote", env, version, "train workflow" if opened_by_workflow else "mlops promote")
        app = self.cluster.apps[f"{self.model}-{env}"]
        result = self._sync(app)
        if result != expect:
            raise MlopsError(f"the rollout of v{version} in {env} ended {result or 'without steps'}, "
                             f"expected {expect}")
        if env == "staging" and result == "completed":
            self._wait_scraped(env, version)
        if result == "aborted":
            revert = [p for p in self.platform.prhost.of_state("open")
                      if p["head"]["ref"].startswith(f"rollback/{self.model}/{env}/")]
            if len(revert) != 1:
                raise MlopsError(f"expected one revert pull request after the abort, found {len(revert)}")
            self.say(f"  the revert pull request opened by itself: #{revert[0]['number']} {revert[0]['title']}")
            self._record_pr(revert[0], "revert", env, None, "rollout-outcome workflow")
            sha = self.platform.prhost.merge(int(revert[0]["number"]))
            self.say(f"  reviewer merged the revert #{revert[0]['number']} as {sha[:12]}")
            self._sync(app)

    def _wait_scraped(self, env: str, version: int, timeout: float = 120) -> None:
        """The production gate reads this version's traffic in ``env`` from Prometheus (the bot's own
        query): wait until a scrape holds it, as a reviewer looks at staging's dashboards first."""
        from mlops_workflows.promote.health import Prometheus, queries

        total, _ = queries(env, self.model, version, "1h")
        prometheus = Prometheus(self.platform.prometheus_url)
        deadline = time.monotonic() + timeout
        while (prometheus.scalar(total) or 0.0) < 1:
            if time.monotonic() > deadline:
                raise MlopsError(f"Prometheus holds no request of v{version} in {env} after {timeout:g}s: {total}")
            time.sleep(0.5)

    def _sync(self, app: App) -> str:
        commit = self.cluster.fetch()
        self.cluster.sync(app, commit)
        self.say(f"  Argo CD synced {app.name} at {commit[:12]}")
        host = self.cluster.ingress_host(app)
        result = self.runner.reconcile(app)
        if result.rollout.get("steps"):
            print(format_rollout(result.rollout), flush=True)
        else:
            self.say(f"  {app.name}: {result.rollout['message']}")
        if host is not None and app.replicasets and host not in self.traffic.targets:
            self.traffic.target(host, f"/models/{app.model}/predict", self.rows, self.settings.background_rps)
        if result.outcome in ("completed", "aborted"):
            self._record_canary(result.rollout)
            rollout = app.rollout()
            version = str(rollout["metadata"]["annotations"]["mlops.io/model-version"])
            self.say(f"  Rollouts notification on-rollout-{result.outcome}: the rollout-outcome workflow runs")
            workflow = self._workflow("rollout-outcome", {
                "outcome": result.outcome, "model": app.model,
                "rollout": f"{app.namespace}/{rollout['metadata']['name']}", "version": version,
                "revision": str(app.revision), "trigger": "rollout"},
                submitted_by=f"Argo Rollouts notification on-rollout-{result.outcome}")
            self._say_workflow(workflow)
            for node in workflow.pods():
                for line in node.result.strip().splitlines()[-2:]:
                    self.say(f"      {line}")
            if workflow.phase != "Succeeded":
                raise MlopsError(f"the rollout-outcome workflow {workflow.name} ended {workflow.phase}: "
                                 f"{workflow.message}; see {self.log}")
            if result.outcome == "completed":
                holder = self._registry().version_by_alias(app.model, app.env)
                self.summary["aliases"].append({"env": app.env, "expected": int(version),
                                                "holder": int(holder.version) if holder is not None else None})
                self.say(f"  alias {app.env!r} of {app.model} now holds v{holder.version if holder else '-'}")
        return result.outcome

    def _registry(self) -> Any:
        from mlops_platform.registry import Registry
        from mlops_platform.settings import PlatformSettings

        return Registry(PlatformSettings(tracking_uri=self.platform.mlflow_url))

    def _record_pr(self, pr: dict[str, Any], kind: str, env: str, version: int | None, opened_by: str) -> None:
        self.summary["pull_requests"].append({"number": pr["number"], "kind": kind, "env": env, "version": version,
                                              "branch": pr["head"]["ref"], "title": pr["title"],
                                              "opened_by": opened_by})

    def _record_canary(self, rollout: dict[str, Any]) -> None:
        if rollout.get("steps"):
            self.summary["canaries"].append(json.loads(json.dumps(rollout)))

    def _cron(self, template: str) -> str:
        """The CronWorkflow that runs ``template`` for this model (its ``model`` argument)."""
        for cron in self.argo.rendered.of_kind("CronWorkflow"):
            spec = cron["spec"]["workflowSpec"]
            arguments = {p["name"]: p.get("value") for p in (spec.get("arguments") or {}).get("parameters", [])}
            if (spec.get("workflowTemplateRef") or {}).get("name") == template and arguments.get("model") == self.model:
                return str(cron["metadata"]["name"])
        raise MlopsError(f"no CronWorkflow runs {template} for {self.model}")

    def _local(self, uri: str) -> Path:
        """Where ``s3://bucket/key`` lies locally (the stand-in's folder per bucket)."""
        if not uri.startswith("s3://"):
            raise MlopsError(f"{uri}: expected an s3:// URI")
        return self.objectstore / uri[5:]

    def _batch_and_drift(self) -> None:
        import pandas as pd

        cron = self._cron("batch-inference")
        self.phase(f"batch inference: CronWorkflow {cron} submitted now")
        spec = self.argo.rendered.find("CronWorkflow", cron)["spec"]["workflowSpec"]
        arguments = {p["name"]: str(p["value"]) for p in spec["arguments"]["parameters"]}
        inbox = self._local(arguments["input-uri"])
        inbox.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame(self.rows, columns=self.columns).sample(n=2000, replace=True, random_state=7)
        # Two files of the day's input: a CSV is one unit of work, so the plan step makes two shards.
        for part in (1, 2):
            frame.iloc[(part - 1) * 1000:part * 1000].to_csv(inbox / f"fresh-{part}.csv", index=False)
        self.say(f"  {len(frame)} rows in two CSV files under {arguments['input-uri']} ({inbox})")
        batch = self._workflow("", {}, cron=cron, submitted_by="mlops lifecycle (argo submit --from cronwf)")
        self._say_workflow(batch)
        if batch.phase != "Succeeded":
            raise MlopsError(f"the batch-inference workflow {batch.name} ended {batch.phase}: {batch.message}")
        summary_lines = batch.node("summary").result.strip().splitlines()
        self.say(f"  {summary_lines[-1] if summary_lines else ''}")
        self.summary["artifacts"]["batch predictions"] = str(self._local(batch.parameters["output-uri"]))

        self.phase(f"drift: shifted traffic to production ({', '.join(self.columns[:self.scenario.shift_columns])} "
                   f"x{self.scenario.shift_factor})")
        shifted = [[v * self.scenario.shift_factor if i < self.scenario.shift_columns else v
                    for i, v in enumerate(row)] for row in self.rows]
        app = self.cluster.apps[f"{self.model}-production"]
        host = self.cluster.ingress_host(app)
        assert host is not None
        sent_at = time.time() - 1
        window = self.traffic.open_window(host)
        self.traffic.target(host, f"/models/{self.model}/predict", shifted, self.settings.canary_rps)
        while window.total < self.scenario.drift_rows:
            time.sleep(0.2)
        self.traffic.remove(host)
        self.traffic.close_window(host, window)
        self.say(f"  {window.total} shifted rows sent through Envoy; waiting for the prediction log's flush")
        production_store = _store_of(app, self.objectstore)
        if production_store is not None:
            logged = _wait_for_rows(production_store, sent_at, window.total, timeout=60)
            self.say(f"  the production pods' prediction log holds {logged} rows written since then")
        cron = self._cron("drift-check")
        # The CronWorkflow's window is an hour of the log; here it is the shifted traffic's minute.
        last = f"{int(time.time() - sent_at) + 2}s"
        self.say(f"  CronWorkflow {cron} submitted now (window={last})")
        known_prs = set(self.platform.prhost.pulls)
        drift = self._workflow("", {"window": last}, cron=cron,
                               submitted_by="mlops lifecycle (argo submit --from cronwf)")
        self._say_workflow(drift)
        code = drift.node("drift").exit_code
        meaning = {int(ExitStatus.OK): "no drift", int(ExitStatus.DRIFT): "drift detected",
                   int(ExitStatus.INSUFFICIENT_DATA): "insufficient data"}.get(code or 0, "an error")
        self.say(f"  mlops drift exited {code} ({meaning})")
        self.summary["drift"] = {"exit": code, "workflow": drift.name}
        psi = query(self.platform.prometheus_url, f'max(mlops_drift_feature_psi_max{{model="{self.model}"}})')
        deadline = time.monotonic() + 60
        while not psi and time.monotonic() < deadline:
            time.sleep(1)
            psi = query(self.platform.prometheus_url, f'max(mlops_drift_feature_psi_max{{model="{self.model}"}})')
        self.summary["drift"]["psi_max"] = float(psi[0]["value"][1]) if psi else None
        self.say(f"  PSI (max over features) in Prometheus via the Pushgateway: {self.summary['drift']['psi_max']}")
        deadline = time.monotonic() + 60
        fired: list[str] = []
        while time.monotonic() < deadline:
            in_am = {a["labels"]["alertname"] for a in alertmanager_alerts(self.platform.alertmanager_url)
                     if a["labels"].get("model") == self.model}
            firing = {a["labels"]["alertname"] for a in firing_alerts(self.platform.prometheus_url)}
            fired = sorted(in_am & firing)
            if any("Drift" in name for name in fired):
                break
            time.sleep(1)
        self.summary["alerts"] = fired
        self.say(f"  alerts firing in Prometheus and received by Alertmanager: {', '.join(fired) or 'none'}")
        retrains = self.argo.find(lambda w: w.template == "train" and w.submitted_by.startswith("Argo Server API"))
        if retrains:
            self.phase("retraining branch of the drift check: the train workflow its retrain step submitted")
        for workflow in retrains:
            self.summary["workflows"].append(workflow)
            self.argo.wait(workflow, 900)
            self._say_workflow(workflow)
            lines = workflow.node("train").result.strip().splitlines()
            opened = [pr for pr in self.platform.prhost.pulls.values() if pr["number"] not in known_prs]
            self.summary["retrain"] = {"workflow": workflow.name, "phase": workflow.phase,
                                       "train": lines[-1] if lines else "",
                                       "steps": {n.name: n.phase for n in workflow.pods()},
                                       "pull_requests": [{"number": pr["number"], "branch": pr["head"]["ref"],
                                                          "title": pr["title"], "state": pr["state"]}
                                                         for pr in opened]}
            self.say(f"  train: {self.summary['retrain']['train']}")
            for pr in opened:
                self.say(f"  its promote step opened #{pr['number']} {pr['title']} ({pr['state']}; "
                         "left for a reviewer)")

    # -- the end ---------------------------------------------------------------------------------

    def _summary(self) -> None:
        self.phase("summary")
        print("versions:")
        for v in self.summary["versions"]:
            print(f"  v{v['version']:<3} gate={v['gate']:<7} {' '.join(v['sets']) or '(the config as is)'}")
        print("pull requests:")
        for number, pr in sorted(self.platform.prhost.pulls.items()):
            state = "merged" if pr.get("merged") else pr["state"]
            print(f"  #{number:<3} {state:<7} {pr['head']['ref']:<44} {pr['title']}")
        print("canaries (weight → measured share through Envoy):")
        for canary in self.summary["canaries"]:
            print(f"  {canary['namespace']}/{canary['name']} v{(canary.get('canary') or canary['stable'])['version']}"
                  f": {canary['outcome']}")
            for step in canary["steps"]:
                if step.get("weight") is not None:
                    share = "-" if step["share"] is None else f"{100 * step['share']:.1f}%"
                    print(f"    setWeight {step['weight']:>3}: {share:>6} of {step['requests']} requests")
                elif step["metrics"]:
                    metrics = ", ".join(f"{m['name']}={m['phase']}" for m in step["metrics"])
                    print(f"    {step['action']}: {step['status']} ({metrics})")
        drift = self.summary["drift"]
        print(f"drift: exit {drift.get('exit')}, max feature PSI {drift.get('psi_max')}; "
              f"alerts fired: {', '.join(self.summary['alerts']) or 'none'}")
        self.summary["workflows"] = [w.record() for w in self.summary["workflows"]]
        print("workflows (rendered WorkflowTemplates run by the local Argo Workflows stand-in):")
        for record in self.summary["workflows"]:
            steps = ", ".join(f"{s['name']} {s['phase']}" + ("" if s["exit_code"] is None else f" ({s['exit_code']})")
                              for s in record["steps"])
            print(f"  {record['name']:<22} {record['phase']:<9} {steps}")
        self.summary["artifacts"].update({
            "MLflow store and artifacts": str(self.home / "mlflow"), "origin (bare Git)": str(self.home / "git"),
            "pull requests": str(self.home / "pulls.json"), "rollout state": str(self.settings.state_file.resolve()),
            "logs": str(self.home / "logs"), "prediction logs": str(self.home / "objectstore")})
        print("artifacts:")
        for what, where in self.summary["artifacts"].items():
            print(f"  {what:<28} {where}")
        self.summary["pull_requests_final"] = list(self.platform.prhost.pulls.values())
        self.summary["urls"] = dict(self.platform.urls())
        self.summary["pod_ports"] = list(self.cluster.ports)
        self.summary["time_scale"] = self.settings.time_scale
        (self.home / "summary.json").write_text(json.dumps(self.summary, indent=1, default=str))
        print(f"summary: {self.home / 'summary.json'}")

    def _checks(self) -> bool:
        ok = True
        for canary in self.summary["canaries"]:
            for step in canary["steps"]:
                measured = step.get("weight") is not None and step["share"] is not None
                if measured and abs(step["share"] * 100 - step["weight"]) > 5:
                    self.say(f"measured share {step['share']:.3f} is not within 5 points of {step['weight']}")
                    ok = False
        if self.summary["drift"].get("exit") != 10 or not any("Drift" in a for a in self.summary["alerts"]):
            self.say("the drift check did not detect drift or no drift alert fired")
            ok = False
        self.say("lifecycle complete" if ok else "lifecycle finished with problems (see above)")
        return ok

    # -- plumbing ------------------------------------------------------------------------------

    def _cli_env(self, platform: Platform) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY)}
        env.update({
            "MLFLOW_TRACKING_URI": platform.mlflow_url, "MLOPS_HOME": str(self.home / "cli"),
            "MLOPS_STORE_URI": str(self.home / "objectstore" / "cli"), "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLOPS_PROMOTE_REPO_PATH": str(self.home / "bot-clone"), "MLOPS_PROMOTE_HOST": "github",
            "MLOPS_PROMOTE_API_URL": platform.prhost.url, "MLOPS_PROMOTE_REPOSITORY": platform.prhost.slug,
            "MLOPS_PROMOTE_TOKEN": platform.token, "MLOPS_PROMOTE_GIT_USERNAME": BOT_USER,
            "MLOPS_PROMETHEUS_URL": platform.prometheus_url,
        })
        return env

    @staticmethod
    def _git_env(platform: Platform) -> dict[str, str]:
        from pydantic import SecretStr

        from mlops_workflows.promote.git_ops import GitCredentials

        env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY)}
        env.update(GitCredentials(BOT_USER, SecretStr(platform.token)).env_for(platform.repo_url))
        return env

    @staticmethod
    def _clone(url: str, target: Path, env: dict[str, str]) -> None:
        out = subprocess.run(["git", "clone", "-q", url, str(target)], capture_output=True, text=True, env=env,
                             timeout=120)
        if out.returncode != 0:
            raise ServiceUnavailableError(f"git clone {url}: {out.stderr.strip()}")


def _key() -> tuple[str, str]:
    from mlops_serving.auth import generate_key

    return generate_key()


def _holdout_rows(registry: Any, model: str, version: int) -> tuple[list[str], list[list[float]]]:
    """The feature columns and rows of a version's labelled holdout (stored at training)."""
    import pandas as pd

    from mlops_platform import registry_names as reg

    mv = registry.get_version(model, version=version)
    frame = pd.read_parquet(io.BytesIO(registry.load_run_file(mv.run_id, reg.HOLDOUT_ARTIFACT)))
    frame = frame.drop(columns=[reg.HOLDOUT_TARGET])
    rows: list[list[float]] = frame.to_numpy(dtype=float).tolist()
    return [str(c) for c in frame.columns], rows


def _wait_for_rows(store: Path, since: float, rows: int, timeout: float) -> int:
    """Rows in Parquet files written under ``store`` after ``since``, once they reach ``rows`` (or time
    runs out): the model servers flush their prediction log on an interval."""
    import pyarrow.parquet as pq

    deadline = time.monotonic() + timeout
    while True:
        found = 0
        for path in store.rglob("*.parquet"):
            with contextlib.suppress(OSError, ValueError):
                if path.stat().st_mtime >= since:
                    found += pq.ParquetFile(path).metadata.num_rows
        if found >= rows or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _store_of(app: App, objectstore: Path) -> Path | None:
    """Where the Application's pods write their prediction log (their MLOPS_STORE_URI, mapped)."""
    assert app.rendered is not None
    for cm in app.rendered.of_kind("ConfigMap"):
        uri = str((cm.get("data") or {}).get("MLOPS_STORE_URI", ""))
        if uri.startswith("s3://"):
            return objectstore / uri[5:]
    return None


@contextlib.contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """SIGTERM (and SIGHUP) stop the run like Ctrl-C: the context managers stop what was started."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


__all__ = ["GateFailedError", "Lifecycle", "Scenario"]

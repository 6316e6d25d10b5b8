"""The local process runner for Argo Workflows: submit a rendered WorkflowTemplate, run its steps as pods would.

The workflow-templates overlay is rendered with ``kubectl kustomize`` and the Git coordinates Argo CD
adds (``mlops.io/git-*`` annotations, pointing at the local Git server). :meth:`LocalArgo.submit`
takes a WorkflowTemplate (or a CronWorkflow, as ``argo submit --from cronwf/NAME``) with parameters
and runs its entrypoint as the workflow controller would:

- **parameters**: the template's arguments with their defaults and ``configMapKeyRef`` values, the
  CronWorkflow's, then the submitter's; ``enum`` is checked; ``{{workflow.name}}``,
  ``{{workflow.namespace}}`` and ``{{workflow.creationTimestamp.<Y|m|d|H|M|S>}}`` are substituted;
- **steps** (groups in order, the steps of a group at once) and **DAG** tasks (``depends`` /
  ``dependencies``; a task whose ``depends`` is false is Omitted; after a failure no new task starts,
  as Argo's ``failFast``); ``when`` (:mod:`mlops_local.argoexpr`); ``withParam`` / ``withItems``
  with ``{{item}}`` (at most ``spec.parallelism`` pods at once); ``continueOn.failed``; step outputs
  ``{{tasks|steps.<name>.exitCode}}``, ``.outputs.result`` (the container's standard output),
  ``.outputs.parameters.<name>`` (a container's ``valueFrom.path`` on one of its volumes, with its
  ``default``; without one a missing file errors the node) and ``.status``; ``retryStrategy`` (the
  template's, else ``templateDefaults``): ``limit``,
  ``retryPolicy``, ``expression`` on ``lastRetry.exitCode|status|duration``, and ``backoff`` whose
  durations are multiplied by the one time factor (``MLOPS_LOCAL_TIME_SCALE``);
  ``activeDeadlineSeconds`` of a container template is its timeout;
- **pods**: each container is resolved by :mod:`mlops_local.podspec` exactly as its pod gets it
  (command, args, ``envFrom``/``env`` from the rendered ConfigMaps and the local Secrets, input and
  workflow parameters substituted) and runs as a local process with *only* that environment; its
  ``git`` input artifact is cloned first with the credentials its ``usernameSecret``/``passwordSecret``
  name (in git's environment only); ``emptyDir`` mounts are folders, removed with the artifacts when
  the pod completes (podGC); the ServiceAccount token
  (``/var/run/secrets/kubernetes.io/serviceaccount``) is a file holding the token the local Argo
  Server (:mod:`mlops_local.argoserver`) knows for the workflow's ServiceAccount.

The only changes to what a pod gets are explicit and must match something (podspec's overrides):
in-cluster service URLs -> local URLs, ``s3://<bucket>`` -> a folder per bucket, the image's
``/app/workflows/models`` -> a folder of model configs, and ``env_replacements`` of settings the
rendered environment already has (the local pull-request host speaks GitHub where kind's overlay
names its Gitea). A setting the rendered environment lacks stays missing.

Cluster-only fields (scheduling, security contexts, resources, pod GC, TTL, synchronization,
metadata, the workflow-level ``activeDeadlineSeconds``) are not applied. Any other field — a ``resource``, ``script``,
``suspend`` or ``http`` template, ``onExit``, hooks, output artifacts, ``templateRef`` — makes the
submission fail with the field's name.
"""

from __future__ import annotations

import itertools
import json
import secrets as token_source
import shutil
import string
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops_local.argoexpr import UnsupportedExpression, evaluate
from mlops_local.podspec import _ARGO, MissingReference, Rendered, render
from mlops_platform.durations import parse_go_duration as parse_duration
from mlops_platform.errors import ConfigError, InvalidInputError, NotFoundError

__all__ = ["LocalArgo", "Node", "UnsupportedFeature", "Workflow"]

TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

_SPEC_RUN = {"entrypoint", "arguments", "templates", "templateDefaults", "parallelism", "serviceAccountName",
             "workflowTemplateRef"}
# Not applied: they place, limit, label or clean up pods, or bound the whole workflow's time.
_SPEC_CLUSTER = {"activeDeadlineSeconds", "workflowMetadata", "podMetadata", "podPriorityClassName",
                 "priorityClassName", "ttlStrategy",
                 "podGC", "synchronization", "securityContext", "volumes", "tolerations", "affinity",
                 "nodeSelector", "podDisruptionBudget", "archiveLogs", "artifactGC", "imagePullSecrets"}
_TEMPLATE_RUN = {"name", "inputs", "outputs", "container", "steps", "dag", "retryStrategy",
                 "activeDeadlineSeconds"}
_TEMPLATE_CLUSTER = {"metadata", "nodeSelector", "tolerations", "affinity", "priorityClassName", "securityContext",
                     "podSpecPatch", "serviceAccountName", "synchronization", "timeout"}
_TEMPLATE_DEFAULTS = {"retryStrategy", "activeDeadlineSeconds", *_TEMPLATE_CLUSTER}
_TASK = {"name", "template", "arguments", "when", "depends", "dependencies", "withParam", "withItems",
         "continueOn"}
_DONE_OK = ("Succeeded", "Skipped", "Daemoned")


class UnsupportedFeature(ConfigError):
    """The template uses a feature the local Argo Workflows stand-in does not run."""


@dataclass
class Node:
    """One node of a workflow: a pod, a step group's step, a DAG task or a fanned-out child."""

    name: str
    template: str
    phase: str = "Pending"  # Succeeded, Failed, Error, Skipped, Omitted
    exit_code: int | None = None
    result: str = ""
    message: str = ""
    attempts: int = 0
    command: list[str] = field(default_factory=list)
    seconds: float = 0.0
    children: list[Node] = field(default_factory=list)
    pod: bool = False
    outputs: dict[str, str] = field(default_factory=dict)  # output parameters (valueFrom.path)

    def pods(self) -> list[Node]:
        out = [self] if self.pod or self.phase in ("Skipped", "Omitted") else []
        for child in self.children:
            out.extend(child.pods())
        return out

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "template": self.template, "phase": self.phase, "exit_code": self.exit_code,
                "attempts": self.attempts, "command": self.command, "seconds": round(self.seconds, 2),
                "message": self.message[-500:], "result": self.result[-2000:], "outputs": dict(self.outputs)}


@dataclass
class Workflow:
    name: str
    template: str
    parameters: dict[str, str]
    namespace: str
    service_account: str
    created: datetime
    entrypoint: str
    source: str = ""  # "WorkflowTemplate/train" or "CronWorkflow/drift-check-..."
    submitted_by: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    phase: str = "Running"
    message: str = ""
    root: Node | None = None
    done: threading.Event = field(default_factory=threading.Event)
    seconds: float = 0.0

    def pods(self) -> list[Node]:
        return self.root.pods() if self.root is not None else []

    def node(self, name: str) -> Node:
        found = [n for n in self.pods() if n.name == name]
        if not found:
            raise NotFoundError(f"workflow {self.name} has no step {name!r} ({[n.name for n in self.pods()]})")
        return found[0]

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "template": self.template, "source": self.source, "entrypoint": self.entrypoint,
                "submitted_by": self.submitted_by, "service_account": self.service_account,
                "parameters": self.parameters, "phase": self.phase, "message": self.message,
                "seconds": round(self.seconds, 2), "steps": [n.record() for n in self.pods()]}

    def api(self) -> dict[str, Any]:
        """The Workflow object as the Argo Server API returns it (the fields ``mlops workflow`` reads)."""
        nodes = {}
        for index, node in enumerate(self.pods()):
            nodes[f"{self.name}-{index}"] = {
                "id": f"{self.name}-{index}", "displayName": node.name, "templateName": node.template,
                "type": "Pod" if node.pod else "Skipped", "phase": node.phase, "message": node.message[-300:],
                "outputs": {"exitCode": "" if node.exit_code is None else str(node.exit_code)}}
        return {"metadata": {"name": self.name, "namespace": self.namespace,
                             "labels": {**self.labels, "workflows.argoproj.io/workflow-template": self.template},
                             "creationTimestamp": self.created.strftime("%Y-%m-%dT%H:%M:%SZ")},
                "spec": {"workflowTemplateRef": {"name": self.template}, "entrypoint": self.entrypoint,
                         "arguments": {"parameters": [{"name": k, "value": v} for k, v in self.parameters.items()]}},
                "status": {"phase": self.phase, "message": self.message, "nodes": nodes}}


class LocalArgo:
    """Submits and runs the rendered workflow templates (see the module docstring)."""

    def __init__(self, rendered: Rendered, workdir: Path, *, secrets: Mapping[str, Mapping[str, str]],
                 services: Mapping[str, str], objectstore: Path, time_scale: float, log: Path,
                 image_paths: Mapping[str, str] | None = None,
                 env_replacements: Mapping[str, str] | None = None) -> None:
        self.rendered = rendered
        self.workdir = workdir
        self.secrets = secrets
        self.services = dict(services)
        self.objectstore = objectstore
        self.time_scale = time_scale
        self.log = log
        self.image_paths = dict(image_paths or {})
        self.env_replacements = dict(env_replacements or {})
        self.workflows: dict[str, Workflow] = {}
        self.tokens = {sa["metadata"]["name"]: token_source.token_urlsafe(24)
                       for sa in rendered.of_kind("ServiceAccount")}
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    @classmethod
    def from_overlay(cls, overlay: Path, repo: Path, annotations: Mapping[str, str], **kwargs: Any) -> LocalArgo:
        return cls(render(overlay, repo=repo, common_annotations=annotations), **kwargs)

    # -- submission --------------------------------------------------------------------------

    def submit(self, template: str, parameters: Mapping[str, str] | None = None, *, cron: str | None = None,
               entrypoint: str | None = None, submitted_by: str = "", labels: Mapping[str, str] | None = None,
               image_paths: Mapping[str, str] | None = None, wait: bool = True,
               on_done: Callable[[Workflow], None] | None = None) -> Workflow:
        """Create a workflow from WorkflowTemplate ``template`` (or from CronWorkflow ``cron``, whose
        template and arguments come first) and run it; ``wait=False`` runs it in a thread."""
        given: dict[str, str] = {}
        source = f"WorkflowTemplate/{template}"
        if cron is not None:
            cron_spec = self.rendered.find("CronWorkflow", cron)["spec"]["workflowSpec"]
            _check_keys(cron_spec, _SPEC_RUN | _SPEC_CLUSTER, f"CronWorkflow {cron}")
            template = str((cron_spec.get("workflowTemplateRef") or {}).get("name") or template)
            given.update({p["name"]: str(p["value"]) for p in (cron_spec.get("arguments") or {}).get("parameters", [])})
            source = f"CronWorkflow/{cron}"
        given.update(dict(parameters or {}))
        wft = self.rendered.find("WorkflowTemplate", template)
        spec = wft["spec"]
        self._validate(template, spec)
        created = datetime.now(tz=UTC)
        name = f"{template}-{''.join(token_source.choice(string.ascii_lowercase + string.digits) for _ in range(5))}"
        namespace = str(wft["metadata"].get("namespace", "default"))
        resolved = self._parameters(spec, given, {"workflow.name": name, "workflow.namespace": namespace,
                                                  **_timestamp(created)})
        entry = entrypoint or str(spec["entrypoint"])
        self._template(spec, entry)
        workflow = Workflow(name, template, resolved, namespace, str(spec.get("serviceAccountName", "default")),
                            created, entry, source, submitted_by, dict(labels or {}))
        with self._lock:
            self.workflows[name] = workflow
        paths = {**self.image_paths, **dict(image_paths or {})}

        def execute() -> None:
            started = time.monotonic()
            try:
                workflow.root = self._run_template(workflow, spec, entry, {}, entry, paths)
                workflow.phase = "Succeeded" if workflow.root.phase == "Succeeded" else "Failed"
                failed = [n for n in workflow.pods() if n.phase in ("Failed", "Error")]
                if failed and workflow.phase == "Failed":
                    workflow.message = f"step {failed[-1].name}: {failed[-1].message}"
            except (ConfigError, InvalidInputError, OSError) as exc:
                workflow.phase, workflow.message = "Error", str(exc)
            finally:
                workflow.seconds = time.monotonic() - started
                workflow.done.set()
                if on_done is not None:
                    on_done(workflow)

        if wait:
            execute()
        else:
            threading.Thread(target=execute, name=f"workflow-{name}", daemon=True).start()
        return workflow

    def wait(self, workflow: Workflow, timeout: float) -> Workflow:
        if not workflow.done.wait(timeout):
            raise InvalidInputError(f"workflow {workflow.name} did not finish within {timeout:g}s")
        return workflow

    def find(self, predicate: Callable[[Workflow], bool]) -> list[Workflow]:
        with self._lock:
            return [w for w in self.workflows.values() if predicate(w)]

    # -- validation --------------------------------------------------------------------------

    def _validate(self, name: str, spec: Mapping[str, Any]) -> None:
        _check_keys(spec, _SPEC_RUN | _SPEC_CLUSTER, f"WorkflowTemplate {name}")
        _check_keys(spec.get("templateDefaults") or {}, _TEMPLATE_DEFAULTS, f"WorkflowTemplate {name} templateDefaults")
        for tmpl in spec.get("templates", []):
            where = f"WorkflowTemplate {name}, template {tmpl.get('name')!r}"
            _check_keys(tmpl, _TEMPLATE_RUN | _TEMPLATE_CLUSTER, where)
            kinds = [k for k in ("container", "steps", "dag") if k in tmpl]
            if len(kinds) != 1:
                raise UnsupportedFeature(f"{where}: runs no container, steps or dag")
            _check_keys(tmpl.get("inputs") or {}, {"parameters", "artifacts"}, f"{where} inputs")
            _check_keys(tmpl.get("outputs") or {}, {"parameters"}, f"{where} outputs")
            for parameter in (tmpl.get("outputs") or {}).get("parameters", []):
                source = parameter.get("valueFrom") or {}
                if "container" not in tmpl or "path" not in source or set(source) - {"path", "default"}:
                    raise UnsupportedFeature(f"{where}: output parameter {parameter.get('name')!r} is not a "
                                             "container's valueFrom.path")
            for artifact in (tmpl.get("inputs") or {}).get("artifacts", []):
                if "git" not in artifact:
                    raise UnsupportedFeature(f"{where}: input artifact {artifact.get('name')!r} is not a git artifact")
            tasks = [t for group in tmpl.get("steps") or [] for t in group] + (tmpl.get("dag") or {}).get("tasks", [])
            for task in tasks:
                _check_keys(task, _TASK, f"{where}, step {task.get('name')!r}")
            _check_keys(tmpl.get("dag") or {}, {"tasks", "failFast"}, f"{where} dag")

    def _parameters(self, spec: Mapping[str, Any], given: Mapping[str, str], globals_: Mapping[str, str]
                    ) -> dict[str, str]:
        declared = {p["name"]: p for p in (spec.get("arguments") or {}).get("parameters", [])}
        resolved = self.rendered.workflow_parameters(spec, given)
        for key, param in declared.items():
            if key in resolved and "enum" in param and resolved[key] not in [str(v) for v in param["enum"]]:
                raise InvalidInputError(f"parameter {key}={resolved[key]!r} is not one of {param['enum']}")
        return {k: _substitute(v, globals_, f"parameter {k}") for k, v in resolved.items()}

    @staticmethod
    def _template(spec: Mapping[str, Any], name: str) -> dict[str, Any]:
        found = [t for t in spec.get("templates", []) if t.get("name") == name]
        if not found:
            raise MissingReference(f"the workflow has no template {name!r}")
        return dict(found[0])

    # -- execution ---------------------------------------------------------------------------

    def _scope(self, workflow: Workflow, inputs: Mapping[str, str]) -> dict[str, str]:
        scope = {f"workflow.parameters.{k}": v for k, v in workflow.parameters.items()}
        scope.update({f"inputs.parameters.{k}": v for k, v in inputs.items()})
        scope.update({"workflow.name": workflow.name, "workflow.namespace": workflow.namespace})
        return scope

    def _run_template(self, workflow: Workflow, spec: Mapping[str, Any], name: str, inputs: Mapping[str, str],
                      display: str, paths: Mapping[str, str]) -> Node:
        tmpl = self._template(spec, name)
        if "container" in tmpl:
            return self._run_pod(workflow, spec, tmpl, inputs, display, paths)
        scope = self._scope(workflow, inputs)
        if "steps" in tmpl:
            return self._run_steps(workflow, spec, tmpl, scope, display, paths)
        return self._run_dag(workflow, spec, tmpl, scope, display, paths)

    def _run_steps(self, workflow: Workflow, spec: Mapping[str, Any], tmpl: Mapping[str, Any],
                   scope: dict[str, str], display: str, paths: Mapping[str, str]) -> Node:
        node = Node(display, str(tmpl["name"]))
        for group in tmpl["steps"]:
            results = self._run_tasks(workflow, spec, group, scope, "steps", paths)
            node.children.extend(results)
            if any(_failed(task, child) for task, child in zip(group, results, strict=True)):
                node.phase = "Failed"
                return node
        node.phase = "Succeeded"
        return node

    def _run_dag(self, workflow: Workflow, spec: Mapping[str, Any], tmpl: Mapping[str, Any],
                 scope: dict[str, str], display: str, paths: Mapping[str, str]) -> Node:
        node = Node(display, str(tmpl["name"]))
        tasks = {t["name"]: t for t in tmpl["dag"]["tasks"]}
        depends = {name: _depends(task) for name, task in tasks.items()}
        done: dict[str, Node] = {}
        failed = False
        while len(done) < len(tasks):
            ready = [n for n in tasks if n not in done and all(d in done for d in _names(depends[n]))]
            if not ready:
                raise UnsupportedFeature(f"DAG {tmpl['name']}: tasks {sorted(set(tasks) - set(done))} depend on each "
                                         "other or on unknown tasks")
            runnable = []
            for name in ready:
                holds = not depends[name] or bool(evaluate(depends[name], _dag_resolver(done)))
                if failed or not holds:
                    done[name] = Node(name, str(tasks[name]["template"]), phase="Omitted",
                                      message="not scheduled after a failure" if failed and holds
                                      else f"depends {depends[name]!r} is false")
                else:
                    runnable.append(tasks[name])
            if runnable:
                for task, child in zip(runnable, self._run_tasks(workflow, spec, runnable, scope, "tasks", paths),
                                       strict=True):
                    done[task["name"]] = child
                    failed = failed or _failed(task, child)
        node.children = [done[n] for n in tasks]
        node.phase = "Failed" if failed else "Succeeded"
        return node

    def _run_tasks(self, workflow: Workflow, spec: Mapping[str, Any], group: list[dict[str, Any]],
                   scope: dict[str, str], prefix: str, paths: Mapping[str, str]) -> list[Node]:
        """Run a step group / a set of ready DAG tasks at once; their outputs join ``scope``."""
        jobs: list[tuple[int, str, str, dict[str, str]]] = []
        results: list[Node] = []
        for index, task in enumerate(group):
            where = f"{workflow.template}: {prefix[:-1]} {task['name']}"
            when = task.get("when")
            if when and not evaluate(_substitute(str(when), scope, where), _no_names(where)):
                results.append(Node(task["name"], str(task["template"]), phase="Skipped",
                                    message=f"when {when!r} was false"))
                continue
            items = _items(task, scope, where)
            parent = Node(task["name"], str(task["template"]))
            results.append(parent)
            for item_index, item in enumerate(items):
                local = {**scope, "item": item} if item is not None else scope
                arguments = {p["name"]: _substitute(str(p.get("value", "")), local, where)
                             for p in (task.get("arguments") or {}).get("parameters", [])}
                display = task["name"] if item is None else f"{task['name']}({item_index}:{item})"
                jobs.append((index, display, str(task["template"]), arguments))
        parallelism = int(spec.get("parallelism") or len(jobs) or 1)
        with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(jobs) or 1))) as pool:
            futures = [(index, pool.submit(self._run_template, workflow, spec, template, arguments, display, paths))
                       for index, display, template, arguments in jobs]
            for index, future in futures:
                child = future.result()
                parent = results[index]
                parent.children.append(child)
        for task, parent in zip(group, results, strict=True):
            key = f"{prefix}.{task['name']}"
            if parent.phase == "Skipped":
                scope[f"{key}.status"] = parent.phase
                continue
            fanned = "withParam" in task or "withItems" in task
            if not fanned and len(parent.children) == 1:
                child = parent.children[0]
                parent.phase, parent.exit_code, parent.result = child.phase, child.exit_code, child.result
                parent.message, parent.children = child.message, child.children
                parent.pod, parent.command, parent.attempts, parent.seconds = (
                    child.pod, child.command, child.attempts, child.seconds)
                parent.name, parent.outputs = child.name, child.outputs
            else:
                bad = [c for c in parent.children if c.phase not in _DONE_OK]
                parent.phase = "Failed" if bad else "Succeeded"
                parent.message = f"{len(bad)} of {len(parent.children)} failed" if bad else ""
            scope[f"{key}.status"] = parent.phase
            scope[f"{key}.exitCode"] = "" if parent.exit_code is None else str(parent.exit_code)
            scope[f"{key}.outputs.result"] = parent.result
            for output, value in parent.outputs.items():
                scope[f"{key}.outputs.parameters.{output}"] = value
        return results

    def _run_pod(self, workflow: Workflow, spec: Mapping[str, Any], tmpl: Mapping[str, Any],
                 inputs: Mapping[str, str], display: str, paths: Mapping[str, str]) -> Node:
        defaults = spec.get("templateDefaults") or {}
        retry = tmpl.get("retryStrategy", defaults.get("retryStrategy")) or {}
        _check_keys(retry, {"limit", "retryPolicy", "expression", "backoff"}, f"template {tmpl['name']} retryStrategy")
        limit = int(retry.get("limit", 0)) if retry else 0
        policy = str(retry.get("retryPolicy", "OnFailure"))
        if policy not in ("Always", "OnFailure", "OnError", "OnTransientError"):
            raise UnsupportedFeature(f"template {tmpl['name']}: retryPolicy {policy!r}")
        deadline = float(tmpl.get("activeDeadlineSeconds") or defaults.get("activeDeadlineSeconds") or 3600)
        node = Node(display, str(tmpl["name"]), pod=True)
        started = time.monotonic()
        backoff_total = 0.0
        while True:
            node.attempts += 1
            self._attempt(workflow, spec, tmpl, inputs, node, deadline, paths)
            if node.phase == "Succeeded" or node.attempts > limit:
                break
            retryable = {"Always": ("Failed", "Error"), "OnFailure": ("Failed",), "OnError": ("Error",),
                         "OnTransientError": ()}[policy]
            if node.phase not in retryable:
                break
            if retry.get("expression"):
                last = {"lastRetry.exitCode": "" if node.exit_code is None else str(node.exit_code),
                        "lastRetry.status": node.phase, "lastRetry.duration": str(int(node.seconds))}
                if not evaluate(str(retry["expression"]), _values(last, f"template {tmpl['name']} retry")):
                    break
            delay = self._backoff(retry.get("backoff") or {}, node.attempts)
            max_duration = (retry.get("backoff") or {}).get("maxDuration")
            if max_duration and backoff_total + delay > parse_duration(str(max_duration)) * self.time_scale:
                break
            backoff_total += delay
            time.sleep(delay)
        node.seconds = time.monotonic() - started
        return node

    def _backoff(self, backoff: Mapping[str, Any], attempt: int) -> float:
        if not backoff.get("duration"):
            return 0.0
        seconds = parse_duration(str(backoff["duration"])) * float(backoff.get("factor", 1)) ** (attempt - 1)
        return seconds * self.time_scale

    def _attempt(self, workflow: Workflow, spec: Mapping[str, Any], tmpl: Mapping[str, Any],
                 inputs: Mapping[str, str], node: Node, deadline: float, paths: Mapping[str, str]) -> None:
        from mlops_local.cluster import applicable

        name = str(tmpl["name"])
        pod = self.rendered.workflow_step(workflow.template, name, parameters=workflow.parameters, inputs=inputs,
                                          secrets=self.secrets)
        node.command = list(pod.argv)
        pod_dir = self.workdir / workflow.name / f"{next(self._counter):03d}-{node.name.split('(')[0]}"
        mounts: dict[str, str] = {}
        for artifact_name, artifact in pod.artifacts.items():
            target = pod_dir / "artifacts" / artifact_name
            error = self._fetch(artifact, target)
            if error:
                node.phase, node.exit_code, node.message = "Error", None, error
                return
            mounts[str(artifact["path"])] = str(target)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for mount in tmpl["container"].get("volumeMounts", []):
            volume = volumes.get(mount["name"], {})
            if "emptyDir" not in volume:
                raise UnsupportedFeature(f"template {name}: volume {mount['name']!r} is not an emptyDir")
            folder = pod_dir / "volumes" / mount["name"]
            folder.mkdir(parents=True, exist_ok=True)
            mounts[str(mount["mountPath"])] = str(folder)
        account = pod_dir / "serviceaccount"
        account.mkdir(parents=True, exist_ok=True)
        token = self.tokens.get(workflow.service_account)
        if token is not None:
            (account / "token").write_text(token)
            (account / "token").chmod(0o600)
        mounts[TOKEN_DIR] = str(account)
        for value in [*pod.argv, *pod.env.values()]:
            if value.startswith("s3://"):
                bucket = value[5:].split("/", 1)[0]
                mounts[f"s3://{bucket}"] = str(self.objectstore / bucket)
        for key, value in self.env_replacements.items():
            if key in pod.env:
                pod.env[key] = value
        local = pod.with_overrides(applicable(pod, {**self.services, **dict(paths), **mounts}))
        cwd = Path(mounts.get("/work/repo", str(pod_dir)))
        cwd.mkdir(parents=True, exist_ok=True)
        begin = time.monotonic()
        try:
            result = local.run(cwd=cwd, timeout=deadline)
            missing = self._read_outputs(tmpl, mounts, node)
        except subprocess.TimeoutExpired:
            node.phase, node.exit_code = "Failed", None
            node.message = f"Pod was active longer than activeDeadlineSeconds {deadline:g}"
            return
        finally:
            node.seconds = time.monotonic() - begin
            # The pod is gone once it completed (podGC): its volumes and fetched artifacts with it.
            for folder in ("artifacts", "volumes"):
                shutil.rmtree(pod_dir / folder, ignore_errors=True)
        node.exit_code = result.returncode
        node.result = result.stdout.strip()
        node.phase = "Succeeded" if result.returncode == 0 else "Failed"
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()
        node.message = "" if result.returncode == 0 else f"exit {result.returncode}: {tail[-1] if tail else ''}"
        if missing and node.phase == "Succeeded":
            # Argo's wait container fails the node when an output without a default cannot be read.
            node.phase, node.message = "Error", missing
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.log.open("a") as out:
            out.write(f"# {workflow.name} {node.name} (attempt {node.attempts})\n$ {' '.join(pod.argv)}\n"
                      f"{result.stdout}{result.stderr}[exit {result.returncode}]\n")

    @staticmethod
    def _read_outputs(tmpl: Mapping[str, Any], mounts: Mapping[str, str], node: Node) -> str:
        """Read the template's output parameters from the pod's volumes; returns an error message or ''."""
        for parameter in (tmpl.get("outputs") or {}).get("parameters", []):
            name, path = str(parameter["name"]), str(parameter["valueFrom"]["path"])
            covering = [m for m in mounts if not m.startswith("s3://") and path.startswith(m.rstrip("/") + "/")]
            if not covering:
                raise UnsupportedFeature(f"template {tmpl['name']}: output {name!r} at {path} is on no volume "
                                         "(the local runner reads outputs from volumes only)")
            mount = max(covering, key=len)
            local = Path(mounts[mount]) / path[len(mount.rstrip("/")) + 1:]
            if local.is_file():
                node.outputs[name] = local.read_text().removesuffix("\n")
            elif "default" in parameter["valueFrom"] or "default" in parameter:
                node.outputs[name] = str(parameter["valueFrom"].get("default", parameter.get("default", "")))
            else:
                return f"output parameter {name!r}: {path} does not exist"
        return ""

    def _fetch(self, artifact: Mapping[str, Any], target: Path) -> str:
        """Clone a git input artifact as Argo's init container does; returns an error message or ''."""
        from pydantic import SecretStr

        from mlops_workflows.promote.git_ops import GitCredentials

        git = artifact["git"]
        env: dict[str, str] = {"PATH": "/usr/bin:/bin", "GIT_TERMINAL_PROMPT": "0"}
        user_ref, password_ref = git.get("usernameSecret"), git.get("passwordSecret")
        if user_ref and password_ref:
            username = self.secrets[user_ref["name"]][user_ref["key"]]
            password = SecretStr(self.secrets[password_ref["name"]][password_ref["key"]])
            env.update(GitCredentials(username, password).env_for(str(git["repo"])))
        argv = ["git", "clone", "-q", "--branch", str(git.get("branch") or git.get("revision") or "main")]
        if git.get("singleBranch"):
            argv.append("--single-branch")
        result = subprocess.run([*argv, str(git["repo"]), str(target)], capture_output=True, text=True, env=env,
                                timeout=120)
        return "" if result.returncode == 0 else f"git artifact {artifact.get('name')!r}: {result.stderr.strip()}"


# ---------------------------------------------------------------------------------------- helpers


def _check_keys(obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise UnsupportedFeature(f"{where}: {', '.join(unknown)} not supported by the local Argo Workflows stand-in")


def _substitute(text: str, values: Mapping[str, str], where: str) -> str:
    def one(match: Any) -> str:
        key = match.group(1)
        if key not in values:
            raise MissingReference(f"{where}: {{{{{key}}}}} has no value here")
        return values[key]

    return str(_ARGO.sub(one, text))


def _timestamp(created: datetime) -> dict[str, str]:
    return {f"workflow.creationTimestamp.{k}": created.strftime(f"%{k}") for k in "YmdHMS"}


def _depends(task: Mapping[str, Any]) -> str:
    if task.get("depends"):
        return str(task["depends"])
    return " && ".join(str(d) for d in task.get("dependencies") or [])


def _names(expression: str) -> list[str]:
    import re

    names = {m.split(".")[0] for m in re.findall(r"[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z]+)?", expression)}
    return sorted(names)


def _dag_resolver(done: Mapping[str, Node]) -> Callable[[str], Any]:
    def resolve(name: str) -> Any:
        task, _, what = name.partition(".")
        if task not in done:
            raise UnsupportedExpression(f"depends names {task!r}, which is not a task of the DAG")
        node = done[task]
        phases = [c.phase for c in node.children] or [node.phase]
        checks = {"": node.phase in _DONE_OK, "Succeeded": node.phase == "Succeeded", "Failed": node.phase == "Failed",
                  "Errored": node.phase == "Error", "Skipped": node.phase == "Skipped",
                  "Omitted": node.phase == "Omitted", "Daemoned": False,
                  "AnySucceeded": "Succeeded" in phases, "AllFailed": all(p == "Failed" for p in phases)}
        if what not in checks:
            raise UnsupportedExpression(f"depends {name!r}: {what!r} is not a task result")
        return checks[what]

    return resolve


def _no_names(where: str) -> Callable[[str], Any]:
    def resolve(name: str) -> Any:
        raise UnsupportedExpression(f"{where}: when names {name!r} (a value left unsubstituted?)")

    return resolve


def _values(values: Mapping[str, str], where: str) -> Callable[[str], Any]:
    def resolve(name: str) -> Any:
        if name not in values:
            raise UnsupportedExpression(f"{where}: expression names {name!r}")
        return values[name]

    return resolve


def _items(task: Mapping[str, Any], scope: Mapping[str, str], where: str) -> list[str | None]:
    if "withItems" in task:
        return [str(i) if not isinstance(i, dict | list) else json.dumps(i) for i in task["withItems"]]
    if "withParam" in task:
        text = _substitute(str(task["withParam"]), scope, where)
        try:
            items = json.loads(text)
        except ValueError:
            raise InvalidInputError(f"{where}: withParam is not a JSON list: {text[:200]!r}") from None
        if not isinstance(items, list):
            raise InvalidInputError(f"{where}: withParam is not a JSON list: {text[:200]!r}")
        return [i if isinstance(i, str) else json.dumps(i) for i in items]
    return [None]


def _failed(task: Mapping[str, Any], node: Node) -> bool:
    if node.phase not in ("Failed", "Error"):
        return False
    continue_on = task.get("continueOn") or {}
    return not (continue_on.get("failed") if node.phase == "Failed" else continue_on.get("error"))

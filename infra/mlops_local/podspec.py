"""What a pod would run: a container of a rendered manifest, resolved as Kubernetes resolves it.

Used by the local platform (``mlops lifecycle``: the reconciler starts the Rollout's pods and the
runner its analysis Jobs and the rollout-outcome workflow step from it) and by the tests. It takes
the objects ``kubectl kustomize`` renders from an overlay and resolves one container exactly as its
pod would get it:

- **command and args**: Argo parameter substitution (``{{inputs.parameters.x}}``,
  ``{{workflow.parameters.x}}``: the workflow's arguments with their defaults, ``valueFrom``
  ``configMapKeyRef`` read from the rendered ConfigMaps, then the caller's values), Kubernetes'
  ``$(VAR)`` expansion from the container's environment, and the image's ENTRYPOINT when the
  container sets no ``command``;
- **environment**: the image's ``ENV`` (its Dockerfile's last stage, PATH excepted), then
  ``envFrom`` in order, then ``env`` (``value``, ``valueFrom.configMapKeyRef`` /
  ``secretKeyRef``); ConfigMaps come from the rendered output, Secrets from the values the caller
  gives for the same names and keys (the local platform's generated secrets, or a test's values). A
  referenced ConfigMap, Secret or key that does not exist and is not ``optional`` raises
  :class:`MissingReference`; a ``{{...}}`` left unresolved raises too.

Then it runs the command locally with *only* that environment (plus what a local process needs to
start Python: PATH, PYTHONPATH, LANG), so a setting missing from the rendered manifests makes the
command fail as it would in the pod. The image's entrypoints map to this checkout's code:

    mlops                     -> <python> -m mlops_workflows.cli      (workflows/Dockerfile)
    python -m mlops_serving   -> <python> -m mlops_serving            (serving/Dockerfile)

The only other changes are **explicit overrides** the caller passes, each applied to every env value
and argument equal to the key or starting with the key and ``/``, and each of which must match
something (an override that matches nothing raises,
so a renamed service cannot silently stop being redirected):

- service addresses mapped to loopback, e.g.
  ``{"http://mlflow.mlops.svc.cluster.local:5000": mlflow.tracking_uri}``;
- paths of the image or of mounted volumes, e.g. ``{"/app/workflows/models": REPO/"workflows/models",
  "/work/repo": clone, "/tmp": tmp_path}``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlops_local.procs import find_binary
from mlops_platform.errors import ConfigError

__all__ = [
    "ENTRYPOINTS",
    "MissingReference",
    "PodCommand",
    "Rendered",
    "external_secret_keys",
    "images",
    "render",
]


def images(repo: Path) -> dict[str, Path]:
    """Image (without tag) -> the Dockerfile it is built from, in the checkout ``repo``: the registry
    names (production) and the names hack/build-images.sh gives them for the kind cluster."""
    dockerfiles = {
        "mlops-jobs": repo / "workflows" / "Dockerfile",
        "model-server": repo / "serving" / "Dockerfile",
        "mlflow-server": repo / "infra" / "mlflow" / "Dockerfile",
    }
    return {
        f"{registry}/{name}": dockerfile
        for registry in ("ghcr.io/mlops-gitops", "localhost/mlops")
        for name, dockerfile in dockerfiles.items()
    }


# The first words of an image's command -> how this checkout runs the same program.
ENTRYPOINTS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("mlops",): (sys.executable, "-m", "mlops_workflows.cli"),
    ("python", "-m", "mlops_serving"): (sys.executable, "-m", "mlops_serving"),
}

_ARGO = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")
_K8S_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class MissingReference(ConfigError):
    """A rendered manifest refers to something that does not exist (the pod would not start)."""


# ------------------------------------------------------------------------------------------ render


@dataclass
class Rendered:
    """The objects one overlay renders to."""

    overlay: Path
    objects: list[dict[str, Any]]
    repo: Path  # the checkout whose Dockerfiles give the images' ENTRYPOINT and ENV

    def find(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.objects if o.get("kind") == kind and o["metadata"]["name"] == name]
        if len(found) != 1:
            names = sorted(o["metadata"]["name"] for o in self.objects if o.get("kind") == kind)
            raise MissingReference(f"{self.overlay} renders {len(found)} {kind} named {name!r} (has {names})")
        return found[0]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == kind]

    def configmap(self, name: str) -> dict[str, str] | None:
        found = [o for o in self.of_kind("ConfigMap") if o["metadata"]["name"] == name]
        return dict(found[0].get("data") or {}) if found else None

    # -- containers -----------------------------------------------------------------------

    def workflow_step(
        self,
        workflow_template: str,
        template: str,
        *,
        parameters: Mapping[str, str] | None = None,
        inputs: Mapping[str, str] | None = None,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
    ) -> PodCommand:
        """The container of ``template`` in WorkflowTemplate (or CronWorkflow) ``workflow_template``.

        ``parameters`` override the workflow's arguments; ``inputs`` are the template's input
        parameters as the calling task passes them (defaults from ``inputs.parameters[].value``).
        """
        wft = self.find("WorkflowTemplate", workflow_template)
        spec = wft["spec"]
        found = [t for t in spec.get("templates", []) if t.get("name") == template]
        if not found:
            raise MissingReference(f"WorkflowTemplate {workflow_template} has no template {template!r}")
        tmpl = found[0]
        container = tmpl.get("container") or tmpl.get("script")
        if container is None:
            raise MissingReference(f"template {template!r} of {workflow_template} runs no container")
        values = {f"workflow.parameters.{k}": v for k, v in self.workflow_parameters(spec, parameters).items()}
        declared = {p["name"]: p.get("value") for p in (tmpl.get("inputs") or {}).get("parameters", [])}
        unknown = set(inputs or {}) - set(declared)
        if unknown:
            raise MissingReference(f"template {template!r} declares no input parameters {sorted(unknown)}")
        merged = {**{k: v for k, v in declared.items() if v is not None}, **dict(inputs or {})}
        values.update({f"inputs.parameters.{k}": str(v) for k, v in merged.items()})
        values["workflow.namespace"] = str(wft["metadata"].get("namespace", "default"))
        where = f"{workflow_template}/{template}"
        pod = self._container(_substitute(container, values, where), secrets)
        artifacts = _substitute((tmpl.get("inputs") or {}).get("artifacts", []), values, where)
        pod.artifacts = {a["name"]: a for a in artifacts}
        return pod

    def job_container(
        self,
        job: Mapping[str, Any],
        container_name: str | None = None,
        *,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
    ) -> PodCommand:
        """A container of a Job (or anything with ``spec.template.spec``, e.g. an analysis Job spec)."""
        spec = job["spec"] if "template" in job["spec"] else job
        return self._pod_template(spec["template"], container_name, secrets)

    def rollout_container(
        self,
        name: str,
        container_name: str | None = None,
        *,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
    ) -> PodCommand:
        return self._pod_template(self.find("Rollout", name)["spec"]["template"], container_name, secrets)

    # -- internals -------------------------------------------------------------------------

    def _pod_template(
        self,
        template: Mapping[str, Any],
        container_name: str | None,
        secrets: Mapping[str, Mapping[str, str]] | None,
    ) -> PodCommand:
        containers = template["spec"]["containers"]
        metadata = template.get("metadata") or {}
        if container_name is None:
            if len(containers) != 1:
                raise MissingReference(f"name the container: the pod has {[c['name'] for c in containers]}")
            return self._container(containers[0], secrets, metadata)
        for container in containers:
            if container["name"] == container_name:
                return self._container(container, secrets, metadata)
        raise MissingReference(f"the pod has no container {container_name!r}")

    def workflow_parameters(self, spec: Mapping[str, Any], given: Mapping[str, str] | None) -> dict[str, str]:
        """A workflow spec's arguments: the given values, else defaults, else ConfigMap values."""
        given = dict(given or {})
        out: dict[str, str] = {}
        declared = (spec.get("arguments") or {}).get("parameters", [])
        unknown = set(given) - {p["name"] for p in declared}
        if unknown:
            raise MissingReference(f"the workflow declares no parameters {sorted(unknown)}")
        for param in declared:
            name = param["name"]
            if name in given:
                out[name] = given[name]
            elif "value" in param:
                out[name] = str(param["value"])
            elif "valueFrom" in param and "configMapKeyRef" in param["valueFrom"]:
                ref = param["valueFrom"]["configMapKeyRef"]
                value = self._configmap_key(ref["name"], ref["key"], bool(ref.get("optional")))
                if value is not None:
                    out[name] = value
            # A parameter without a value must be given at submission; left out, its use fails.
        return out

    def _configmap_key(self, name: str, key: str, optional: bool) -> str | None:
        data = self.configmap(name)
        if data is None or key not in data:
            if optional:
                return None
            what = f"ConfigMap {name}" if data is None else f"key {key!r} of ConfigMap {name}"
            raise MissingReference(f"{self.overlay} renders no {what}")
        return data[key]

    def _container(
        self,
        container: Mapping[str, Any],
        secrets: Mapping[str, Mapping[str, str]] | None,
        pod_metadata: Mapping[str, Any] | None = None,
    ) -> PodCommand:
        secrets = secrets or {}
        for name, values in secrets.items():
            produced = external_secret_keys(name, self.repo)
            if produced is not None and set(values) - produced:
                raise MissingReference(
                    f"the caller gives Secret {name} keys {sorted(set(values) - produced)} that its "
                    f"ExternalSecret does not produce ({sorted(produced)})"
                )

        def secret_key(name: str, key: str, optional: bool) -> str | None:
            if name not in secrets or key not in secrets[name]:
                if optional:
                    return None
                raise MissingReference(f"no value given for key {key!r} of Secret {name}")
            return secrets[name][key]

        image = str(container["image"])
        entrypoint, image_env = _image_defaults(image, self.repo)
        env: dict[str, str] = dict(image_env)
        for source in container.get("envFrom", []):
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                ref = source["configMapRef"]
                data = self.configmap(ref["name"])
                if data is None:
                    if ref.get("optional"):
                        continue
                    raise MissingReference(f"{self.overlay} renders no ConfigMap {ref['name']} (envFrom)")
            else:
                ref = source["secretRef"]
                if ref["name"] not in secrets:
                    if ref.get("optional"):
                        continue
                    raise MissingReference(f"no Secret {ref['name']} given (envFrom)")
                data = dict(secrets[ref["name"]])
            env.update({prefix + k: str(v) for k, v in data.items() if _ENV_NAME.match(prefix + k)})
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = _expand(str(item["value"]), env)
            elif "valueFrom" in item:
                src = item["valueFrom"]
                value: str | None
                if "configMapKeyRef" in src:
                    ref = src["configMapKeyRef"]
                    value = self._configmap_key(ref["name"], ref["key"], bool(ref.get("optional")))
                elif "secretKeyRef" in src:
                    ref = src["secretKeyRef"]
                    value = secret_key(ref["name"], ref["key"], bool(ref.get("optional")))
                elif "fieldRef" in src:
                    value = _field_ref(str(src["fieldRef"]["fieldPath"]), pod_metadata or {})
                else:
                    raise MissingReference(f"env {item['name']}: valueFrom {sorted(src)} is not supported here")
                if value is not None:
                    env[item["name"]] = value
            else:
                env[item["name"]] = ""
        command = [_expand(str(a), env) for a in container.get("command", [])] or list(entrypoint)
        args = [_expand(str(a), env) for a in container.get("args", [])]
        return PodCommand(argv=[*command, *args], env=env, image=image)


# ------------------------------------------------------------------------------------- a command


@dataclass
class PodCommand:
    """A container's program as its pod would start it."""

    argv: list[str]
    env: dict[str, str]
    image: str
    overrides: dict[str, str] = field(default_factory=dict)
    # Input artifacts of a workflow step (parameters substituted), which Argo's artifact driver
    # fetches before the container starts: the caller does the same (e.g. a git clone).
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def with_overrides(self, overrides: Mapping[str, str | os.PathLike[str]]) -> PodCommand:
        """Redirect service addresses and image paths (see the module docstring); each must match."""
        mapping = {k: str(v) for k, v in overrides.items()}
        used: set[str] = set()

        def apply(value: str) -> str:
            for key in sorted(mapping, key=len, reverse=True):
                if value == key or value.startswith(key.rstrip("/") + "/"):
                    used.add(key)
                    return mapping[key].rstrip("/") + value[len(key.rstrip("/")) :]
            return value

        argv = [apply(a) for a in self.argv]
        env = {k: apply(v) for k, v in self.env.items()}
        unused = set(mapping) - used
        if unused:
            raise MissingReference(f"overrides match nothing in the pod's command or environment: {sorted(unused)}")
        return PodCommand(
            argv=argv, env=env, image=self.image, overrides={**self.overrides, **mapping}, artifacts=self.artifacts
        )

    def local_argv(self) -> list[str]:
        for prefix, local in sorted(ENTRYPOINTS.items(), key=lambda kv: len(kv[0]), reverse=True):
            if tuple(self.argv[: len(prefix)]) == prefix:
                return [*local, *self.argv[len(prefix) :]]
        raise MissingReference(f"no local program for the image command {self.argv[:3]}")

    def local_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The pod's environment plus what a local Python process needs to start (nothing else)."""
        env = dict(self.env)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")])
        for name in ("PYTHONPATH", "LANG", "LC_ALL", "MLOPS_REQUIRE_INTEGRATION"):
            if name in os.environ:
                env.setdefault(name, os.environ[name])
        env.update(extra or {})
        return env

    def run(
        self,
        *,
        cwd: Path,
        timeout: float = 300,
        extra_env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the command to completion in ``cwd`` (the image's WORKDIR, mapped by the caller)."""
        return subprocess.run(
            self.local_argv(),
            cwd=cwd,
            env=self.local_env(extra_env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen(self, *, cwd: Path, log: Path, extra_env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start the command (a server) in its own process group, output to ``log``; the caller stops it."""
        with log.open("ab") as out:
            return subprocess.Popen(
                self.local_argv(),
                cwd=cwd,
                env=self.local_env(extra_env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


# ---------------------------------------------------------------------------------------- helpers


def render(
    overlay: Path, *, repo: Path, common_annotations: Mapping[str, str] | None = None, kubectl: str | None = None
) -> Rendered:
    """``kubectl kustomize overlay`` (a folder of the checkout ``repo``); with ``common_annotations`` as
    Argo CD's ``kustomize.commonAnnotations``.

    Argo CD applies that field by running ``kustomize edit add annotation`` in the overlay folder
    before the build; the same is done here on a copy of the repository (the checkout is never
    written).
    """
    kubectl = kubectl or find_binary("kubectl", "kubectl (https://kubernetes.io/docs/tasks/tools/)")
    overlay = overlay.resolve()
    repo = repo.resolve()
    if not common_annotations:
        return Rendered(overlay, _kustomize(kubectl, overlay), repo)
    with tempfile.TemporaryDirectory(prefix="podexec-") as tmp:
        copy = Path(tmp) / "repo"
        shutil.copytree(
            repo, copy, ignore=shutil.ignore_patterns(".git", ".venv", ".mlops", "__pycache__", "*.egg-info")
        )
        target = copy / overlay.relative_to(repo)
        kfile = target / "kustomization.yaml"
        doc = yaml.safe_load(kfile.read_text())
        doc.setdefault("commonAnnotations", {}).update(dict(common_annotations))
        kfile.write_text(yaml.safe_dump(doc, sort_keys=False))
        return Rendered(overlay, _kustomize(kubectl, target), repo)


def external_secret_keys(name: str, repo: Path) -> set[str] | None:
    """The keys of the Secret ``name`` that an ExternalSecret under infra/secrets/ creates, or None."""
    for path in sorted((repo / "infra" / "secrets").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "ExternalSecret":
                continue
            spec = doc.get("spec", {})
            if (spec.get("target") or {}).get("name", doc["metadata"]["name"]) == name:
                return {d["secretKey"] for d in spec.get("data", [])}
    return None


def _kustomize(kubectl: str, path: Path) -> list[dict[str, Any]]:
    out = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise MissingReference(f"kubectl kustomize {path} failed: {out.stderr.strip()}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


_FIELD = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


def _field_ref(path: str, metadata: Mapping[str, Any]) -> str:
    """The downward API's ``fieldRef`` from the pod template's metadata (labels, annotations)."""
    match = _FIELD.match(path)
    if match is None:
        raise MissingReference(f"fieldRef {path!r} is not resolvable from a pod template (labels/annotations only)")
    values = metadata.get(match.group(1)) or {}
    if match.group(2) not in values:
        raise MissingReference(f"fieldRef {path!r}: the pod template has no such {match.group(1)[:-1]}")
    return str(values[match.group(2)])


def _substitute(node: Any, values: Mapping[str, str], where: str) -> Any:
    if isinstance(node, str):

        def one(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in values:
                raise MissingReference(f"{where}: {{{{{key}}}}} has no value (given: {sorted(values)})")
            return values[key]

        return _ARGO.sub(one, node)
    if isinstance(node, list):
        return [_substitute(n, values, where) for n in node]
    if isinstance(node, dict):
        return {k: _substitute(v, values, where) for k, v in node.items()}
    return node


def _expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: a defined variable is replaced, an undefined one left as is."""
    return _K8S_VAR.sub(lambda m: env.get(m.group(1), m.group(0)), value.replace("$$", "\0")).replace("\0", "$")


def _image_defaults(image: str, repo: Path) -> tuple[list[str], dict[str, str]]:
    """ENTRYPOINT and ENV (PATH excepted) of the last stage of the image's Dockerfile."""
    name = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    dockerfile = images(repo).get(name)
    if dockerfile is None:
        raise MissingReference(f"image {image} is not built in this repository (images())")
    stage = _last_stage(_logical_lines(dockerfile.read_text()))
    entrypoint: list[str] = []
    env: dict[str, str] = {}
    for line in stage:
        word, _, rest = line.partition(" ")
        if word.upper() == "ENTRYPOINT":
            entrypoint = list(yaml.safe_load(rest))
        elif word.upper() == "ENV":
            for token in _split_env(rest):
                key, _, value = token.partition("=")
                if key != "PATH":
                    env[key] = value
    return entrypoint, env


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append((current + stripped).strip())
        current = ""
    return lines


def _last_stage(lines: Iterable[str]) -> list[str]:
    stage: list[str] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stage = []
        else:
            stage.append(line)
    return stage


def _split_env(rest: str) -> Sequence[str]:
    import shlex

    return [t for t in shlex.split(rest) if "=" in t]

"""An environment is its entry in the list and its folder of differences: the shared manifests that
name every environment are written from the list.

``infra/mlops_platform/environments.yaml`` (the list) and ``serving/manifests/components/<env>/``
(what differs: replicas, canary steps, thresholds) are what a person writes. From the list come:

- ``apps/secrets-models.generated.yaml``: per environment the Application ``secrets-models-<env>``
  syncing ``infra/secrets/models-<env>/`` (rewritten whole);
- the blocks between ``# BEGIN environments <what>`` and ``# END environments`` marker lines, in any
  manifest that has one (rewritten whole, at the BEGIN line's indentation). ``<what>`` says what the
  block holds: ``namespaces`` (the Namespaces ``models-<env>``), ``hosts`` (the gateway's hosts),
  ``buckets`` (MinIO's bucket list), ``api-keys`` (a secret store Role's ``model-api-keys-<env>``:
  Kubernetes RBAC has no wildcard for resourceNames, and ``secrets`` without names would let the
  store read every Secret of its namespace) and ``environments`` (a workflow parameter's enum);
- ``infra/secrets/models-<env>/kustomization.yaml``, created when missing and never rewritten
  (an environment may add its own secrets, as staging's replay key);
- each model's ``serving/manifests/models/<model>/<env>/`` (:func:`mlops_gitops.manifests.modelset.sync`).

:func:`sync` writes them (``mlops environments sync``); :func:`check` (``hack/validate``) names a
generated file or block that does not match the list. What stays hand-written (the folder of
differences) is checked by :mod:`mlops_gitops.manifests.environment_checks`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from string import Template

from mlops_gitops.manifests import modelset
from mlops_gitops.manifests.model import Problem
from mlops_platform import environments as env_names
from mlops_platform.errors import ConfigError

LIST = Path("infra/mlops_platform/environments.yaml")
APPS = Path("apps/secrets-models.generated.yaml")
SECRETS = Path("infra/secrets")
SCANNED = (Path("apps"), Path("clusters"), Path("infra"), Path("serving/manifests"), Path("workflows/manifests"))
BLOCKS_REQUIRED = {
    Path("infra/namespaces/namespaces.yaml"): "namespaces",
    Path("serving/manifests/gateway/gateway.yaml"): "hosts",
    Path("infra/minio/configmap-buckets.yaml"): "buckets",
    Path("workflows/manifests/workflowtemplate-train.yaml"): "environments",
    Path("workflows/manifests/workflowtemplate-drift-check.yaml"): "environments",
}
"""Files that must carry a block (a cluster's secret store carries ``api-keys`` when it has one)."""
PLATFORM_BUCKETS = ("mlops-mlflow", "mlops-workflows")
"""The buckets that are no environment's: MLflow's artifacts and the workflows' artifacts."""
BEGIN = re.compile(r"^(?P<indent>[ ]*)# BEGIN environments (?P<what>[a-z-]+)\b")
END = re.compile(r"^[ ]*# END environments\b")
SYNC = "run `mlops environments sync`"


def begin_line(what: str) -> str:
    return f"# BEGIN environments {what}: written by `mlops environments sync` from {LIST}"


def _namespaces(envs: Sequence[str]) -> list[str]:
    lines: list[str] = []
    for env in envs:
        lines += ["---", "apiVersion: v1", "kind: Namespace", "metadata:", f"  name: {env_names.namespace(env)}",
                  "  labels:", "    app.kubernetes.io/part-of: mlops", "    istio-injection: enabled",
                  f"    mlops.io/environment: {env}"]
    return lines


def _hosts(envs: Sequence[str]) -> list[str]:
    return [f"- {env_names.namespace(env)}/*.{env_names.host_suffix(env)}" for env in envs]


def _buckets(envs: Sequence[str]) -> list[str]:
    return ["buckets: |", *(f"  {b}" for b in (*PLATFORM_BUCKETS, *map(env_names.bucket, envs)))]


def _api_keys(envs: Sequence[str]) -> list[str]:
    return [f"- model-api-keys-{env}" for env in sorted(envs)]


def _enum(envs: Sequence[str]) -> list[str]:
    return [f"- {env}" for env in envs]


RENDERERS: dict[str, Callable[[Sequence[str]], list[str]]] = {
    "namespaces": _namespaces, "hosts": _hosts, "buckets": _buckets, "api-keys": _api_keys, "environments": _enum,
}

_APP = Template("""\
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: secrets-models-${env}
  namespace: argocd
  labels:
    app.kubernetes.io/part-of: mlops
    mlops.io/source: git
  annotations:
    argocd.argoproj.io/sync-wave: "-20"
  finalizers:
    - resources-finalizer.argocd.argoproj.io
spec:
  project: platform
  source:
    repoURL: GIT_REPO_URL
    targetRevision: GIT_REVISION
    path: infra/secrets/${namespace}
  destination:
    server: https://kubernetes.default.svc
    namespace: ${namespace}
  syncPolicy:
    automated:
      prune: true
      selfHeal: true
    syncOptions:
      # The namespace is created and labelled by the namespaces Application (wave -30).
      - CreateNamespace=false
      # Custom resources whose CRDs an earlier wave installs: skip the dry run while the CRD is
      # still being registered instead of failing the first sync.
      - SkipDryRunOnMissingResource=true
    retry:
      limit: 10
      backoff:
        duration: 10s
        factor: 2
        maxDuration: 5m
""")

_APPS_HEADER = f"""\
# GENERATED by `mlops environments sync` from {LIST}: do not edit. hack/validate fails when this
# file does not match the list. Per environment: the Application syncing the ExternalSecrets of its
# namespace, infra/secrets/models-<env>/ (infra/secrets/README.md lists them).
"""

_SECRETS = Template("""\
# Secrets of the ${env} model servers. Written once by `mlops environments sync`; add the
# environment's own secrets here (as models-staging does).
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization

namespace: ${namespace}

components:
  - ../models

patches:
  - target:
      kind: ExternalSecret
      name: model-api-keys
    patch: |-
      - op: test
        path: /spec/data/0/remoteRef/key
        value: model-api-keys-ENV
      - op: replace
        path: /spec/data/0/remoteRef/key
        value: model-api-keys-${env}
""")


def generated_apps(envs: Sequence[str]) -> str:
    return _APPS_HEADER + "".join(_APP.substitute(env=e, namespace=env_names.namespace(e)) for e in envs)


def secrets_kustomization(env: str) -> str:
    return _SECRETS.substitute(env=env, namespace=env_names.namespace(env))


def read_list(root: Path) -> tuple[str, ...]:
    """The environments of ``root``'s list; ConfigError naming the file otherwise."""
    try:
        text = (root / LIST).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{LIST}: cannot be read ({exc.strerror or exc})") from exc
    return env_names.parse(text, str(LIST))


# -- blocks ----------------------------------------------------------------------------------


def _blocks(lines: list[str]) -> Iterator[tuple[int, int, str, str]]:
    """(BEGIN index, END index, indentation, what) of each block; ConfigError for an unclosed one."""
    i = 0
    while i < len(lines):
        match = BEGIN.match(lines[i])
        if match:
            end = next((j for j in range(i + 1, len(lines)) if END.match(lines[j]) or BEGIN.match(lines[j])), None)
            if end is None or not END.match(lines[end]):
                raise ConfigError(f"line {i + 1}: a '# BEGIN environments' block without its '# END environments'")
            yield i, end, match.group("indent"), match.group("what")
            i = end
        i += 1


def updated_blocks(text: str, envs: Sequence[str]) -> str:
    """``text`` with each block rewritten for ``envs``; ConfigError for an unknown or unclosed block."""
    lines = text.splitlines()
    out: list[str] = []
    last = 0
    for begin, end, indent, what in _blocks(lines):
        renderer = RENDERERS.get(what)
        if renderer is None:
            raise ConfigError(f"line {begin + 1}: unknown block {what!r} (one of {', '.join(RENDERERS)})")
        out += lines[last : begin + 1]
        out += [indent + line for line in renderer(envs)]
        last = end
    out += lines[last:]
    return "\n".join(out) + "\n"


def _marked_files(root: Path) -> list[Path]:
    """Files (relative to ``root``) holding a block, and the files that must."""
    found = set(BLOCKS_REQUIRED)
    for folder in SCANNED:
        for path in (root / folder).rglob("*.yaml"):
            if "# BEGIN environments " in path.read_text(encoding="utf-8"):
                found.add(path.relative_to(root))
    return sorted(found)


# -- writing ---------------------------------------------------------------------------------


def planned(root: Path, envs: Sequence[str]) -> dict[Path, str]:
    """Every file the list determines and its expected text (relative paths)."""
    writes: dict[Path, str] = {APPS: generated_apps(envs)}
    for rel in _marked_files(root):
        try:
            text = (root / rel).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{rel}: cannot be read ({exc.strerror or exc})") from exc
        try:
            writes[rel] = updated_blocks(text, envs)
        except ConfigError as exc:
            raise ConfigError(f"{rel}: {exc}") from exc
    for env in envs:
        kustomization = SECRETS / env_names.namespace(env) / "kustomization.yaml"
        if not (root / kustomization).exists():
            writes[kustomization] = secrets_kustomization(env)
    return writes


def sync(root: Path) -> list[Path]:
    """Write what the list determines, then each model's serving folders; returns the files written
    (relative to ``root``). A bad list or block stops it before anything is written."""
    envs = read_list(root)
    writes = planned(root, envs)
    missing = [str(rel) for rel, what in BLOCKS_REQUIRED.items()
               if not any(w == what for *_, w in _blocks((root / rel).read_text(encoding="utf-8").splitlines()))]
    if missing:
        raise ConfigError(f"no '# BEGIN environments' block to write in {', '.join(missing)}")
    changed: list[Path] = []
    for rel, text in writes.items():
        path = root / rel
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        changed.append(rel)
    return changed + modelset.sync(root, envs)


# -- checking --------------------------------------------------------------------------------


def check(root: Path) -> list[Problem]:
    """A generated file or block that does not match the list, named with the command that writes it.
    A list that does not load is reported by the environment check."""
    try:
        envs = read_list(root)
    except ConfigError:
        return []
    problems: list[Problem] = []
    for rel, what in BLOCKS_REQUIRED.items():
        path = root / rel
        if not path.is_file():
            continue  # the render reports a missing resource
        try:
            blocks = [w for *_, w in _blocks(path.read_text(encoding="utf-8").splitlines())]
        except ConfigError:
            blocks = [what]  # reported below
        if what not in blocks:
            problems.append(Problem(str(rel), f"environments {what}",
                                    f"no block between '{begin_line(what)}' and '# END environments' lines; "
                                    f"add the two lines and {SYNC}"))
    try:
        expected = planned(root, envs)
    except ConfigError as exc:
        return [*problems, Problem(str(LIST), "environments", str(exc))]
    for rel, text in expected.items():
        path = root / rel
        if rel.parent.parent == SECRETS:
            continue  # a missing secrets folder is named by the environment check
        if not path.is_file():
            problems.append(Problem(str(rel), "", f"missing; {SYNC}"))
        elif path.read_text(encoding="utf-8") != text:
            what = "does not match" if rel == APPS else "its '# BEGIN environments' block does not match"
            problems.append(Problem(str(rel), "", f"{what} {LIST}; {SYNC}"))
    return problems

"""Every environment of the one list (``infra/mlops_platform/environments.yaml``) is complete.

Kustomize cannot generate the shared objects that name every environment (the namespaces, the
gateway's hosts, the buckets, the secrets, the workflow parameters' enums) from a list:
``mlops environments sync`` (:mod:`mlops_gitops.manifests.envset`) writes them, and this check holds
each of them against the list and names the piece an environment still lacks, with that command;
the folder of differences, which stays hand-written, is checked here too. The
mesh policies and the Argo CD projects match ``models-*`` and are checked to keep covering every
environment. The reverse holds too: a piece of an environment that is not in the list is reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from mlops_gitops.manifests.model import Obj, Problem
from mlops_platform import environments as env_names
from mlops_platform.errors import ConfigError

LIST = Path("infra/mlops_platform/environments.yaml")
COMPONENTS = Path("serving/manifests/components")
MODELS = Path("serving/manifests/models")
NAMESPACES = Path("infra/namespaces/namespaces.yaml")
GATEWAY = Path("serving/manifests/gateway/gateway.yaml")
BUCKETS = Path("infra/minio/configmap-buckets.yaml")
SECRETS = Path("infra/secrets")
WORKFLOWS = Path("workflows/manifests")
MESH = Path("infra/mesh")
ENV_LABEL = "mlops.io/environment"
SYNC = "run `mlops environments sync`"
NOT_AN_ENVIRONMENT = frozenset({"unpinned"})
"""Components beside the environments' that are no environment (serving/manifests/components/)."""


def _docs(path: Path) -> list[dict[str, Any]]:
    try:
        return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]
    except (OSError, yaml.YAMLError):
        return []


def _get(doc: Any, *keys: str | int) -> Any:
    for key in keys:
        if isinstance(key, int):
            doc = doc[key] if isinstance(doc, list) and len(doc) > key else None
        else:
            doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def read_list(root: Path) -> tuple[tuple[str, ...], list[Problem]]:
    try:
        return env_names.parse((root / LIST).read_text(encoding="utf-8"), str(LIST)), []
    except OSError as exc:
        return (), [Problem(str(LIST), "environments", f"the list of environments cannot be read: {exc}")]
    except ConfigError as exc:
        return (), [Problem(str(LIST), "environments", str(exc))]


def check_environments(root: Path, objects: Iterable[Obj]) -> Iterator[Problem]:
    names, problems = read_list(root)
    yield from problems
    if not names:
        return
    objects = list(objects)
    for env in names:
        for source, message in _missing(root, env, objects):
            yield Problem(source, f"environment {env}", message)
    yield from _unlisted(root, names)
    yield from _enums(root, names)


def _missing(root: Path, env: str, objects: list[Obj]) -> Iterator[tuple[str, str]]:
    namespace = env_names.namespace(env)
    # Its folder of differences.
    component = root / COMPONENTS / env / "kustomization.yaml"
    if not component.is_file():
        yield str(COMPONENTS / env), ("missing: the environment's folder of differences (a kustomize Component; "
                                      "copy serving/manifests/components/production/ and change what differs)")
    else:
        [doc] = _docs(component)[:1] or [{}]
        where = str(COMPONENTS / env / "kustomization.yaml")
        if doc.get("namespace") != namespace:
            yield where, f"missing: namespace: {namespace}"
        text = component.read_text(encoding="utf-8")
        for what, expected in (("the model host", f"model.{env_names.host_suffix(env)}"),
                               ("the object store", f"s3://{env_names.bucket(env)}/")):
            if expected not in text:
                yield where, f"missing: {what} {expected} (the environment's folder names its own)"
    # Its namespace, labelled with the environment and in the mesh.
    ns = [d for d in _docs(root / NAMESPACES)
          if d.get("kind") == "Namespace" and _get(d, "metadata", "name") == namespace]
    if not ns:
        yield str(NAMESPACES), f"missing: the Namespace {namespace}; {SYNC}"
    else:
        labels = _get(ns[0], "metadata", "labels") or {}
        if labels.get(ENV_LABEL) != env or labels.get("istio-injection") != "enabled":
            yield str(NAMESPACES), (f"missing: the labels {ENV_LABEL}: {env} and istio-injection: enabled "
                                    f"of the Namespace {namespace}; {SYNC}")
    # Its hosts on the shared gateway.
    host = f"{namespace}/*.{env_names.host_suffix(env)}"
    hosts = {h for d in _docs(root / GATEWAY) for s in _get(d, "spec", "servers") or [] for h in s.get("hosts") or []}
    if host not in hosts:
        yield str(GATEWAY), f"missing: the host {host} of the Gateway; {SYNC}"
    # Its bucket.
    buckets = {str(b).strip() for d in _docs(root / BUCKETS)
               for b in str(_get(d, "data", "buckets") or "").splitlines()}
    if env_names.bucket(env) not in buckets:
        yield str(BUCKETS), f"missing: the bucket {env_names.bucket(env)} in data.buckets; {SYNC}"
    # Its secrets: a folder, and the Application that syncs it into the namespace.
    secrets = SECRETS / namespace / "kustomization.yaml"
    if not (root / secrets).is_file():
        yield str(SECRETS / namespace), ("missing: the environment's secrets (a kustomization with namespace "
                                         f"{namespace} including ../models); {SYNC}")
    elif (_docs(root / secrets)[:1] or [{}])[0].get("namespace") != namespace:
        yield str(secrets), f"missing: namespace: {namespace}"
    apps = [o for o in objects if o.kind == "Application" and o.source.path.parts[:1] == ("apps",)
            and _get(o.spec, "source", "path") == str(SECRETS / namespace)]
    if not apps:
        yield "apps", f"missing: an Application syncing {SECRETS / namespace}; {SYNC}"
    # The development secret store (kind) may read the environment's API keys.
    for rbac in sorted((root / "clusters").glob("*/secret-store/*.yaml")):
        for doc in _docs(rbac):
            if doc.get("kind") != "Role":
                continue
            for rule in doc.get("rules") or []:
                names = rule.get("resourceNames")
                if "secrets" in (rule.get("resources") or []) and names and f"model-api-keys-{env}" not in names:
                    role = _get(doc, "metadata", "name")
                    yield (str(rbac.relative_to(root)),
                           f"missing: model-api-keys-{env} in the resourceNames of Role {role}; {SYNC}")
    # Mesh policies and Argo CD projects that let model namespaces in must let this one in.
    for policy in sorted((root / MESH).glob("authorizationpolicy-*.yaml")):
        for doc in _docs(policy):
            allowed = [n for r in _get(doc, "spec", "rules") or [] for f in r.get("from") or []
                       for n in _get(f, "source", "namespaces") or []]
            if _lets_models_in(allowed) and not any(fnmatchcase(namespace, str(n)) for n in allowed):
                yield (str(policy.relative_to(root)),
                       f"missing: {namespace} in the source namespaces (models-* covers all)")
    for project in sorted((root / "apps").glob("appproject-*.yaml")):
        for doc in _docs(project):
            allowed = [str(d.get("namespace")) for d in _get(doc, "spec", "destinations") or []]
            if _lets_models_in(allowed) and not any(fnmatchcase(namespace, n) for n in allowed):
                yield str(project.relative_to(root)), f"missing: the destination {namespace} (models-* covers all)"
    # A release of every model.
    for model in sorted(p for p in (root / MODELS).glob("*") if p.is_dir()):
        if not (model / env / "kustomization.yaml").is_file():
            yield str(MODELS / model.name), (f"missing: {env}/ (the model's release in {env}: kustomization.yaml "
                                              f"and release.env); {SYNC}")


def _lets_models_in(namespaces: list[Any]) -> bool:
    return any(str(n).startswith("models-") for n in namespaces)


def _unlisted(root: Path, names: tuple[str, ...]) -> Iterator[Problem]:
    """Pieces of an environment the list does not name."""
    known = set(names)
    where = f"not in {LIST}"
    for folder in sorted(p for p in (root / COMPONENTS).glob("*") if p.is_dir()):
        if folder.name not in known | NOT_AN_ENVIRONMENT:
            yield Problem(str(COMPONENTS / folder.name), f"environment {folder.name}", where)
    for model in sorted(p for p in (root / MODELS).glob("*/*") if p.is_dir()):
        if model.name not in known:
            yield Problem(str(model.relative_to(root)), f"environment {model.name}", where)
    for doc in _docs(root / NAMESPACES):
        env = (_get(doc, "metadata", "labels") or {}).get(ENV_LABEL)
        if env is not None and env not in known:
            yield Problem(str(NAMESPACES), f"environment {env}", where)


def _enums(root: Path, names: tuple[str, ...]) -> Iterator[Problem]:
    """A workflow parameter that offers environments offers each of them, in the list's order."""
    for path in sorted((root / WORKFLOWS).glob("*.yaml")):
        for doc in _docs(path):
            for param in _get(doc, "spec", "arguments", "parameters") or []:
                enum = param.get("enum") if isinstance(param, dict) else None
                if not isinstance(enum, list) or not set(map(str, enum)) & set(names):
                    continue
                offered = [str(v) for v in enum if str(v) not in env_names.RESERVED]
                if offered != list(names):
                    missing = [n for n in names if n not in offered]
                    detail = (f"missing: {', '.join(missing)}" if missing
                              else f"expected {', '.join(names)} in this order") + f"; {SYNC}"
                    yield Problem(str(path.relative_to(root)), f"parameter {param.get('name')}",
                                  f"the environments offered are {', '.join(offered)}; {detail}")

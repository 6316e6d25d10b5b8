"""Cross-reference checks: do the objects that name each other agree?

Objects are looked up in their own bundle (one rendered kustomization or one file), in the same
namespace, except Gateways and ClusterAnalysisTemplates, which are shared and looked up in the
whole repository.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mlops_gitops.manifests.discover import walk
from mlops_gitops.manifests.model import Obj, Problem, Source
from mlops_gitops.manifests.promql import metric_names

WORKLOAD_KINDS = frozenset({"Rollout", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"})
PROMETHEUS_SYNTHETIC = frozenset({
    "up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
    "scrape_series_added", "ALERTS", "ALERTS_FOR_STATE",
})
"""Series Prometheus itself creates for every target or alert; allowed besides the catalogue."""


@dataclass(frozen=True)
class RepoContext:
    root: Path
    repo_urls: frozenset[str]
    image_prefix: str
    known_images: dict[str, str]
    metric_catalogue: frozenset[str]


def normalize_url(url: str) -> str:
    url = url.strip().lower().rstrip("/")
    return url[:-4] if url.endswith(".git") else url


class Index:
    """Objects by (kind, namespace, name), for one bundle."""

    def __init__(self, objects: Iterable[Obj]) -> None:
        self.objects = list(objects)
        self._by_key: dict[tuple[str, str, str], Obj] = {}
        for obj in self.objects:
            self._by_key.setdefault((obj.kind, obj.namespace, obj.name), obj)

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self._by_key.get((kind, namespace, name))

    def of_kind(self, *kinds: str) -> list[Obj]:
        return [o for o in self.objects if o.kind in kinds]


def _dig(body: Any, *keys: str | int) -> Any:
    for key in keys:
        if isinstance(key, int):
            body = body[key] if isinstance(body, list) and len(body) > key else None
        else:
            body = body.get(key) if isinstance(body, dict) else None
        if body is None:
            return None
    return body


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _selects(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _pod_labels(workload: Obj) -> dict[str, Any]:
    return _dict(_dig(workload.spec, "template", "metadata", "labels"))


def _container_ports(workload: Obj) -> tuple[set[str], set[int]]:
    names: set[str] = set()
    numbers: set[int] = set()
    for container in _list(_dig(workload.spec, "template", "spec", "containers")):
        for port in _list(_dict(container).get("ports")):
            port = _dict(port)
            if "name" in port:
                names.add(str(port["name"]))
            if isinstance(port.get("containerPort"), int):
                numbers.add(port["containerPort"])
    return names, numbers


def _service_host(host: str, namespace: str) -> tuple[str, str] | None:
    """The (namespace, name) of a Service a mesh host names, or None for a non-Service host."""
    if "." not in host:
        return namespace, host
    match = re.fullmatch(r"([a-z0-9-]+)\.([a-z0-9-]+)(\.svc(\.cluster\.local)?)?", host)
    return (match.group(2), match.group(1)) if match else None


# -- Rollout ---------------------------------------------------------------------------------------


def check_rollout(ro: Obj, index: Index, repo_index: Index) -> Iterator[Problem]:
    ns = ro.namespace
    pod_labels = _pod_labels(ro)
    selector = _dict(_dig(ro.spec, "selector", "matchLabels"))
    if not _selects(selector, pod_labels):
        yield Problem.at(ro, f"spec.selector.matchLabels {selector} does not match the pod template labels")
    name = _dig(ro.spec, "template", "spec", "serviceAccountName")
    if isinstance(name, str) and name != "default" and index.get("ServiceAccount", ns, name) is None:
        yield Problem.at(ro, f"serviceAccountName {name!r}: no such ServiceAccount in this bundle")
    canary = _dict(_dig(ro.spec, "strategy", "canary"))
    if not canary:
        return
    services: dict[str, Obj] = {}
    for role in ("stableService", "canaryService"):
        svc_name = canary.get(role)
        if not isinstance(svc_name, str):
            continue
        svc = index.get("Service", ns, svc_name)
        if svc is None:
            yield Problem.at(ro, f"{role} {svc_name!r}: no such Service in namespace {ns or '(none)'}")
            continue
        services[role] = svc
        svc_selector = _dict(svc.spec.get("selector"))
        if not _selects(svc_selector, pod_labels):
            yield Problem.at(ro, f"{role} {svc_name!r} selects none of the Rollout's pods "
                                 f"(selector {svc_selector}, pod labels {pod_labels})")
        port_names, port_numbers = _container_ports(ro)
        for port in _list(svc.spec.get("ports")):
            target = _dict(port).get("targetPort", _dict(port).get("port"))
            if target not in port_names and target not in port_numbers:
                yield Problem.at(ro, f"{role} {svc_name!r} targets port {target!r}, which no container exposes")
    if "stableService" in services and services.get("canaryService") is services["stableService"]:
        yield Problem.at(ro, "stableService and canaryService must be different Services")

    istio = _dict(_dig(canary, "trafficRouting", "istio"))
    dr_ref = _dict(istio.get("destinationRule"))
    vs_refs = [_dict(istio.get("virtualService"))] if istio.get("virtualService") else []
    vs_refs += [_dict(v) for v in _list(istio.get("virtualServices"))]
    for ref in vs_refs:
        yield from _check_rollout_vs(ro, ref, services, dr_ref, index)
    if dr_ref:
        dr = index.get("DestinationRule", ns, str(dr_ref.get("name")))
        if dr is None:
            yield Problem.at(ro, f"destinationRule {dr_ref.get('name')!r}: no such DestinationRule")
        else:
            subsets = {_dict(s).get("name") for s in _list(dr.spec.get("subsets"))}
            for key in ("stableSubsetName", "canarySubsetName"):
                if dr_ref.get(key) not in subsets:
                    yield Problem.at(ro, f"destinationRule {dr.name!r} has no subset {dr_ref.get(key)!r}")

    analyses = [_dict(step.get("analysis")) for step in map(_dict, _list(canary.get("steps")))
                if step.get("analysis")]
    if canary.get("analysis"):
        analyses.append(_dict(canary["analysis"]))
    for analysis in analyses:
        yield from _check_analysis_ref(ro, analysis, index, repo_index)


def _check_rollout_vs(ro: Obj, ref: dict[str, Any], services: dict[str, Obj], dr_ref: dict[str, Any],
                      index: Index) -> Iterator[Problem]:
    vs = index.get("VirtualService", ro.namespace, str(ref.get("name")))
    if vs is None:
        yield Problem.at(ro, f"virtualService {ref.get('name')!r}: no such VirtualService in namespace "
                             f"{ro.namespace or '(none)'}")
        return
    http = [_dict(h) for h in _list(vs.spec.get("http"))]
    names = [h.get("name") for h in http]
    routes = [str(r) for r in _list(ref.get("routes"))]
    if not routes and len(http) != 1:
        yield Problem.at(ro, f"virtualService {vs.name!r} has {len(http)} HTTP routes: list the one to manage")
    chosen = [h for h in http if h.get("name") in routes] if routes else http[:1]
    for route in routes:
        if route not in names:
            yield Problem.at(ro, f"route {route!r} is not a route of VirtualService {vs.name!r} "
                                 f"(routes: {', '.join(str(n) for n in names) or 'none named'})")
    stable, canary = services.get("stableService"), services.get("canaryService")
    for http_route in chosen:
        destinations = [_dict(_dict(d).get("destination")) for d in _list(http_route.get("route"))]
        weights = [_dict(d).get("weight", 0 if len(destinations) > 1 else 100)
                   for d in _list(http_route.get("route"))]
        label = f"route {http_route.get('name')!r} of VirtualService {vs.name!r}"
        if dr_ref:
            subsets = {d.get("subset") for d in destinations}
            expected_subsets = {dr_ref.get("stableSubsetName"), dr_ref.get("canarySubsetName")}
            if subsets != expected_subsets:
                yield Problem.at(ro, f"{label} routes to subsets {sorted(map(str, subsets))}, "
                                     f"expected {sorted(map(str, expected_subsets))}")
            continue
        if stable is None or canary is None:
            continue
        hosts = [_service_host(str(d.get("host", "")), vs.namespace) for d in destinations]
        expected = [(ro.namespace, stable.name), (ro.namespace, canary.name)]
        if sorted(h for h in hosts if h) != sorted(expected) or len(hosts) != 2:
            yield Problem.at(ro, f"{label} must route to exactly the stable and canary Services "
                                 f"{stable.name!r} and {canary.name!r}, routes to "
                                 f"{[d.get('host') for d in destinations]}")
            continue
        by_host = dict(zip(hosts, zip(destinations, weights, strict=True), strict=True))
        for svc, want in ((stable, 100), (canary, 0)):
            destination, weight = by_host[(ro.namespace, svc.name)]
            if weight != want:
                yield Problem.at(ro, f"{label}: Git must keep weight {want} on {svc.name!r} (has {weight}); "
                                     "Argo Rollouts moves it during a canary")
            number = _dig(destination, "port", "number")
            svc_ports = {_dict(p).get("port") for p in _list(svc.spec.get("ports"))}
            if number is not None and number not in svc_ports:
                yield Problem.at(ro, f"{label} sends to port {number} of {svc.name!r}, which has ports "
                                     f"{sorted(p for p in svc_ports if p is not None)}")


def _check_analysis_ref(ro: Obj, analysis: dict[str, Any], index: Index, repo_index: Index) -> Iterator[Problem]:
    declared: set[str] = set()
    required: set[str] = set()
    for tref in map(_dict, _list(analysis.get("templates"))):
        name = str(tref.get("templateName"))
        if tref.get("clusterScope"):
            found = [o for o in repo_index.of_kind("ClusterAnalysisTemplate") if o.name == name]
            template = found[0] if found else None
            kind = "ClusterAnalysisTemplate"
        else:
            template = index.get("AnalysisTemplate", ro.namespace, name)
            kind = "AnalysisTemplate"
        if template is None:
            yield Problem.at(ro, f"analysis template {name!r}: no such {kind} in namespace {ro.namespace or '(none)'}")
            continue
        for arg in map(_dict, _list(template.spec.get("args"))):
            declared.add(str(arg.get("name")))
            if "value" not in arg and "valueFrom" not in arg:
                required.add(str(arg.get("name")))
    given = {str(_dict(a).get("name")) for a in _list(analysis.get("args"))}
    for missing in sorted(required - given):
        yield Problem.at(ro, f"analysis arg {missing!r} is required by its templates but not given")
    if declared:
        for unknown in sorted(given - declared):
            yield Problem.at(ro, f"analysis arg {unknown!r} is not an arg of any of its templates")


# -- Services, selectors, Istio ---------------------------------------------------------------------


def check_selectors(index: Index) -> Iterator[Problem]:
    workloads = index.of_kind(*WORKLOAD_KINDS)
    for obj in index.objects:
        if obj.kind == "Service":
            selector = _dict(obj.spec.get("selector"))
        elif obj.kind in ("PodDisruptionBudget", "PodMonitor"):
            selector = _dict(_dig(obj.spec, "selector", "matchLabels"))
        else:
            continue
        same_ns = [w for w in workloads if w.namespace == obj.namespace]
        if not selector or not same_ns:
            continue
        if not any(_selects(selector, _pod_labels(w)) for w in same_ns):
            yield Problem.at(obj, f"selector {selector} selects no pod of any workload in this bundle")
    for hpa in index.of_kind("HorizontalPodAutoscaler"):
        target = _dict(hpa.spec.get("scaleTargetRef"))
        if index.get(str(target.get("kind")), hpa.namespace, str(target.get("name"))) is None:
            yield Problem.at(hpa, f"scaleTargetRef {target.get('kind')}/{target.get('name')}: not found")


def _gateway_hosts(gateway: Obj) -> list[str]:
    return [str(h) for server in _list(gateway.spec.get("servers")) for h in _list(_dict(server).get("hosts"))]


def _host_allowed(pattern: str, vs_namespace: str, host: str) -> bool:
    ns, _, hostpat = pattern.rpartition("/")
    if ns not in ("", "*", ".") and ns != vs_namespace:
        return False
    return fnmatch.fnmatchcase(host, hostpat)


def check_istio(index: Index, repo_index: Index) -> Iterator[Problem]:
    for vs in index.of_kind("VirtualService"):
        hosts = [str(h) for h in _list(vs.spec.get("hosts"))]
        for ref in map(str, _list(vs.spec.get("gateways"))):
            if ref == "mesh":
                continue
            gw_ns, _, gw_name = ref.rpartition("/")
            gw_ns = gw_ns or vs.namespace
            found = [g for g in repo_index.of_kind("Gateway") if g.group == "networking.istio.io"
                     and g.name == gw_name and (g.namespace == gw_ns or not gw_ns)]
            if not found:
                yield Problem.at(vs, f"gateway {ref!r}: no such Istio Gateway in this repository")
            elif vs.namespace and not any(_host_allowed(p, vs.namespace, h)
                                          for p in _gateway_hosts(found[0]) for h in hosts):
                yield Problem.at(vs, f"no host of {hosts} is allowed by gateway {ref!r} "
                                     f"(hosts {_gateway_hosts(found[0])})")
        for route in map(_dict, _list(vs.spec.get("http"))):
            for dest in (_dict(_dict(d).get("destination")) for d in _list(route.get("route"))):
                yield from _check_service_host(vs, str(dest.get("host", "")), _dig(dest, "port", "number"), index)
    for dr in index.of_kind("DestinationRule"):
        yield from _check_service_host(dr, str(dr.spec.get("host", "")), None, index)


def _check_service_host(obj: Obj, host: str, port: Any, index: Index) -> Iterator[Problem]:
    target = _service_host(host, obj.namespace)
    if target is None or "*" in host:
        return
    svc = index.get("Service", *target)
    if svc is None:
        if "." not in host:  # a short name always means a Service of this namespace
            yield Problem.at(obj, f"host {host!r}: no such Service in namespace {obj.namespace or '(none)'}")
        return
    ports = {_dict(p).get("port") for p in _list(svc.spec.get("ports"))}
    if port is not None and port not in ports:
        yield Problem.at(obj, f"host {host!r}: Service has no port {port}")


# -- Argo CD ---------------------------------------------------------------------------------------


_FAST = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")


def render_param(text: str, rel_dir: str) -> str:
    """Evaluate the path parameters of a Git directory generator in an ApplicationSet template."""
    segments = rel_dir.split("/")
    basename = segments[-1]
    values = {
        ".path.path": rel_dir, "path": rel_dir, ".path.basename": basename, "path.basename": basename,
        ".path.basenameNormalized": re.sub(r"[^a-z0-9-.]", "-", basename.lower()),
        "path.basenameNormalized": re.sub(r"[^a-z0-9-.]", "-", basename.lower()),
    }

    def one(match: re.Match[str]) -> str:
        expr = match.group(1)
        if expr in values:
            return values[expr]
        index = re.fullmatch(r"index \.path\.segments (\d+)|path\[(\d+)\]", expr)
        if index:
            position = int(index.group(1) or index.group(2))
            if position < len(segments):
                return segments[position]
        raise ValueError(f"cannot evaluate {match.group(0)!r} for directory {rel_dir!r}")

    return _FAST.sub(one, text)


def _glob_dirs(root: Path, pattern: str) -> list[str]:
    parts = PurePosixPath(pattern.strip("/")).parts
    found = []
    for folder in walk(root):
        rel = folder.relative_to(root).as_posix()
        segs = rel.split("/") if rel != "." else []
        if len(segs) == len(parts) and all(fnmatch.fnmatchcase(s, p) for s, p in zip(segs, parts, strict=True)):
            found.append(rel)
    return sorted(found)


def _rendered_namespaces(objects_by_source: dict[Source, list[Obj]], rel: str) -> set[str]:
    return {o.namespace for o in objects_by_source.get(Source(Path(rel), rendered=True), []) if o.namespace}


def _check_app_spec(obj: Obj, spec: dict[str, Any], rel_dir: str | None, ctx: RepoContext,
                    objects_by_source: dict[Source, list[Obj]]) -> Iterator[Problem]:
    sources = [_dict(spec.get("source"))] if spec.get("source") else []
    sources += [_dict(s) for s in _list(spec.get("sources"))]
    label = f" (generated for {rel_dir})" if rel_dir else ""
    for source in sources:
        if normalize_url(str(source.get("repoURL", ""))) not in ctx.repo_urls or "chart" in source:
            continue
        path = source.get("path")
        if not isinstance(path, str):
            continue
        try:
            path = render_param(path, rel_dir) if rel_dir else path
            namespace = str(_dig(spec, "destination", "namespace") or "")
            namespace = render_param(namespace, rel_dir) if rel_dir else namespace
        except ValueError as exc:
            yield Problem.at(obj, str(exc))
            continue
        if not (ctx.root / path).is_dir():
            yield Problem.at(obj, f"source path {path!r}{label} does not exist in this repository")
            continue
        if not any((ctx.root / path).iterdir()):
            yield Problem.at(obj, f"source path {path!r}{label} is empty")
        others = _rendered_namespaces(objects_by_source, path) - {namespace}
        if namespace and others:
            yield Problem.at(obj, f"destination namespace {namespace!r}{label} differs from the namespace "
                                  f"{sorted(others)} the objects at {path!r} set")


def _git_generator_dirs(obj: Obj, ctx: RepoContext, problems: list[Problem]) -> list[str]:
    """The folders of this repository an ApplicationSet's Git directory generators produce."""
    dirs: list[str] = []
    for generator in map(_dict, _list(obj.spec.get("generators"))):
        git = _dict(generator.get("git"))
        if not git or normalize_url(str(git.get("repoURL", ""))) not in ctx.repo_urls:
            continue
        included: list[str] = []
        excluded: set[str] = set()
        for entry in map(_dict, _list(git.get("directories"))):
            matches = _glob_dirs(ctx.root, str(entry.get("path", "")))
            if entry.get("exclude"):
                excluded.update(matches)
            elif not matches:
                problems.append(Problem.at(obj, f"git directories path {entry.get('path')!r} matches no directory"))
            else:
                included.extend(matches)
        for entry in map(_dict, _list(git.get("files"))):
            pattern = str(entry.get("path", ""))
            if not any(ctx.root.glob(pattern)):
                problems.append(Problem.at(obj, f"git files path {pattern!r} matches no file"))
        dirs.extend(sorted(set(included) - excluded))
    return dirs


def check_argocd(objects: list[Obj], ctx: RepoContext, objects_by_source: dict[Source, list[Obj]]) -> Iterator[Problem]:
    for obj in objects:
        if obj.group != "argoproj.io":
            continue
        if obj.kind == "Application":
            yield from _check_app_spec(obj, obj.spec, None, ctx, objects_by_source)
        elif obj.kind == "ApplicationSet":
            template_spec = _dict(_dig(obj.spec, "template", "spec"))
            problems: list[Problem] = []
            for rel_dir in _git_generator_dirs(obj, ctx, problems):
                yield from _check_app_spec(obj, template_spec, rel_dir, ctx, objects_by_source)
            yield from problems


def application_folders(objects: list[Obj], ctx: RepoContext) -> dict[str, bool]:
    """Folders of this repository that Argo CD Applications (and ApplicationSet templates) sync as
    plain directories, each with whether it is read recursively (``directory.recurse``)."""
    folders: dict[str, bool] = {}

    def add(spec: dict[str, Any], rel_dir: str | None) -> None:
        sources = [_dict(spec.get("source"))] if spec.get("source") else []
        sources += [_dict(s) for s in _list(spec.get("sources"))]
        for source in sources:
            path = source.get("path")
            if (normalize_url(str(source.get("repoURL", ""))) not in ctx.repo_urls or "chart" in source
                    or not isinstance(path, str)):
                continue
            try:
                path = render_param(path, rel_dir) if rel_dir else path
            except ValueError:
                continue
            key = PurePosixPath(path.strip("/") or ".").as_posix()
            folders[key] = folders.get(key, False) or bool(_dig(source, "directory", "recurse"))

    for obj in objects:
        if obj.group != "argoproj.io":
            continue
        if obj.kind == "Application":
            add(obj.spec, None)
        elif obj.kind == "ApplicationSet":
            for rel_dir in _git_generator_dirs(obj, ctx, []):
                add(_dict(_dig(obj.spec, "template", "spec")), rel_dir)
    return folders


def check_unincluded(files: list[Path], orphans: list[Path], referenced: set[Path],
                     app_folders: dict[str, bool]) -> Iterator[Problem]:
    """A manifest that no kustomization lists and no Application syncs reaches no cluster: in a
    GitOps repository that is almost always a forgotten ``resources:`` entry or a leftover file."""
    message = "holds Kubernetes objects but is not included by any kustomization or Application"
    for rel in orphans:
        yield Problem(str(rel), "", f"{message}: its folder's kustomization does not list it (add it to "
                                    "resources, or delete the file)")
    orphaned = set(orphans)
    for rel in files:
        if rel in orphaned or rel in referenced:
            continue
        folder = PurePosixPath(rel.parent.as_posix())
        if folder.as_posix() in app_folders or any(
                recurse and (key == "." or folder.is_relative_to(key)) for key, recurse in app_folders.items()):
            continue
        yield Problem(str(rel), "", f"{message} (list it in a kustomization, point an Application at "
                                    "its folder, or delete the file)")


# -- in-cluster service URLs -----------------------------------------------------------------------


SERVICE_URL = re.compile(
    r"\b(https?)://([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.svc"
    r"(?:\.cluster\.local)?(?::(\d+))?(?![\w.-])"
)
"""``http(s)://<service>.<namespace>.svc[.cluster.local][:<port>]``."""
BUILTIN_SERVICES = frozenset({("default", "kubernetes")})


def _env_values(value: Any) -> Iterator[tuple[str, str]]:
    """(name, value) of every literal ``env`` entry in an object (containers, templates, ...)."""
    if isinstance(value, dict):
        for key, sub in value.items():
            if key == "env" and isinstance(sub, list):
                for entry in map(_dict, sub):
                    if isinstance(entry.get("value"), str):
                        yield f"env {entry.get('name')}", entry["value"]
            else:
                yield from _env_values(sub)
    elif isinstance(value, list):
        for item in value:
            yield from _env_values(item)


def service_urls(obj: Obj) -> Iterator[tuple[str, str, str, str, int]]:
    """(where, url, namespace, service, port) of the in-cluster Service URLs in an object's ConfigMap
    data and literal env values."""
    texts: list[tuple[str, str]] = []
    if obj.kind == "ConfigMap" and obj.group == "":
        texts += [(f"data.{k}", v) for k, v in _dict(obj.body.get("data")).items() if isinstance(v, str)]
    texts += list(_env_values(obj.body.get("spec")))
    for where, text in texts:
        for match in SERVICE_URL.finditer(text):
            scheme, name, namespace, port = match.groups()
            yield where, match.group(0), namespace, name, int(port) if port else (443 if scheme == "https" else 80)


def chart_releases(objects: Iterable[Obj]) -> set[tuple[str, str]]:
    """(namespace, release) of every Helm chart an Argo CD Application installs."""
    releases: set[tuple[str, str]] = set()
    for app in objects:
        if app.kind != "Application" or app.group != "argoproj.io":
            continue
        namespace = str(_dig(app.spec, "destination", "namespace") or "")
        sources = [_dict(app.spec.get("source"))] if app.spec.get("source") else []
        sources += [_dict(s) for s in _list(app.spec.get("sources"))]
        for source in sources:
            if "chart" in source and namespace:
                releases.add((namespace, str(_dig(source, "helm", "releaseName") or app.name)))
    return releases


def check_service_urls(objects: list[Obj]) -> Iterator[Problem]:
    """Every in-cluster URL names a Service this repository creates, on one of its ports. A Service a
    Helm chart creates is accepted when an Application installs a release of that name prefix in
    that namespace (its ports live in the chart, so they are not checked)."""
    services: dict[tuple[str, str], set[Any]] = defaultdict(set)
    for svc in objects:
        if svc.kind == "Service" and svc.group == "" and svc.namespace:
            services[(svc.namespace, svc.name)].update(_dict(p).get("port") for p in _list(svc.spec.get("ports")))
    releases = chart_releases(objects)
    for obj in objects:
        for where, url, namespace, name, port in service_urls(obj):
            if (namespace, name) in BUILTIN_SERVICES:
                continue
            ports = services.get((namespace, name))
            if ports is None:
                if any(ns == namespace and (name == rel or name.startswith(f"{rel}-")) for ns, rel in releases):
                    continue
                yield Problem.at(obj, f"{where}: {url!r} names Service {name!r} in namespace {namespace!r}, "
                                      "which no manifest or Helm release of this repository creates")
            elif port not in ports:
                yield Problem.at(obj, f"{where}: {url!r}: Service {namespace}/{name} has no port {port} "
                                      f"(ports {sorted(p for p in ports if isinstance(p, int))})")


# -- metric names, images, secrets ----------------------------------------------------------------


def strings_at(value: Any, name: str) -> Iterator[str]:
    """Every string under the key ``name`` anywhere in a nested object (not below such a string's key)."""
    if isinstance(value, dict):
        for key, sub in value.items():
            if key == name and isinstance(sub, str):
                yield sub
            else:
                yield from strings_at(sub, name)
    elif isinstance(value, list):
        for item in value:
            yield from strings_at(item, name)


def _exprs(value: Any) -> Iterator[str]:
    return strings_at(value, "expr")


def queries(obj: Obj) -> Iterator[tuple[str, str]]:
    """(where, PromQL) pairs of an object: analysis queries, rule expressions, dashboard targets."""
    if obj.kind in ("AnalysisTemplate", "ClusterAnalysisTemplate") and obj.group == "argoproj.io":
        for metric in map(_dict, _list(obj.spec.get("metrics"))):
            query = _dig(metric, "provider", "prometheus", "query")
            if isinstance(query, str):
                yield f"metric {metric.get('name')!r}", query
    elif obj.kind == "PrometheusRule":
        for group in map(_dict, _list(obj.spec.get("groups"))):
            for rule in map(_dict, _list(group.get("rules"))):
                if isinstance(rule.get("expr"), str):
                    yield f"rule {rule.get('alert') or rule.get('record')!r}", str(rule["expr"])
    elif obj.kind == "ConfigMap":
        for key, value in _dict(obj.body.get("data")).items():
            if str(key).endswith(".json"):
                try:
                    dashboard = json.loads(value)
                except (TypeError, ValueError):
                    continue
                for expr in _exprs(dashboard):
                    yield f"dashboard {key!r}", expr


def check_metric_names(where: str, subject: str, query: str, catalogue: frozenset[str]) -> Iterator[str]:
    for name in sorted(metric_names(query) - catalogue - PROMETHEUS_SYNTHETIC):
        yield f"{where} queries {name!r}, which the project's code does not export (see mlops_platform.metric_names)"


def dashboard_files(root: Path) -> Iterator[tuple[Path, str]]:
    for folder in walk(root):
        for path in sorted(folder.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and "panels" in data:
                for expr in _exprs(data):
                    yield path.relative_to(root), expr


def images(value: Any) -> Iterator[str]:
    """Every ``image:`` string anywhere in a rendered object."""
    return strings_at(value, "image")


def split_image(image: str) -> tuple[str, str | None, bool]:
    """(repository, tag, has_digest) of an image reference."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repository, _, tag = name.rpartition(":")
        return repository, tag, bool(digest)
    return name, None, bool(digest)


def dockerfiles(root: Path) -> list[Path]:
    found = []
    for folder in walk(root):
        for path in sorted(folder.iterdir()):
            if path.is_file() and (path.name == "Dockerfile" or path.name.startswith("Dockerfile.")
                                   or path.name.endswith(".Dockerfile")):
                found.append(path.relative_to(root))
    return found


def check_image(obj: Obj, image: str, ctx: RepoContext, files: list[Path]) -> Iterator[Problem]:
    repository, tag, digest = split_image(image)
    if not digest and (tag is None or tag == "latest"):
        yield Problem.at(obj, f"image {image!r} has no explicit tag")
    if not repository.startswith(ctx.image_prefix):
        return
    short = repository[len(ctx.image_prefix):]
    known = ctx.known_images.get(short)
    if known is not None and (ctx.root / known).is_file():
        return
    for path in files:
        if path.parent.name == short:
            return
        try:
            if repository in (ctx.root / path).read_text(encoding="utf-8"):
                return
        except OSError:
            continue
    expected = f" (expected {known})" if known else ""
    yield Problem.at(obj, f"image {repository!r} is built from this repository, but no Dockerfile here "
                          f"builds it{expected}")


def check_secret(obj: Obj) -> Iterator[Problem]:
    if obj.kind == "Secret" and obj.group == "" and (obj.body.get("data") or obj.body.get("stringData")):
        yield Problem.at(obj, "Secret with plain data is committed; create it out of band or commit a "
                              "SealedSecret/ExternalSecret instead")


def by_source(objects: Iterable[Obj]) -> dict[Source, list[Obj]]:
    grouped: dict[Source, list[Obj]] = defaultdict(list)
    for obj in objects:
        grouped[obj.source].append(obj)
    return dict(grouped)

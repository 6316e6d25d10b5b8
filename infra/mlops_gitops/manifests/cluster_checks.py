"""A cluster folder holds only what differs, and no replacement picks its target by position.

``clusters/components/base/`` is what every cluster shares (the app-of-apps, the root Application,
the fan-out of the coordinates); ``clusters/NAME/`` includes it and adds its coordinates, the chart
values it changes and the folders its Applications read. Checked here:

- every cluster includes the base and copies none of it (no ``../../apps``, no ``root-app.yaml``),
  and its ``cluster`` coordinate is its folder's name;
- each file of a cluster's ``values/`` is read by an Application (a misspelt name would otherwise be
  ignored: the chart Applications accept a missing cluster value file) and changes something;
- no file of a cluster folder repeats another cluster's file (shared content belongs in
  ``clusters/components/``); kustomization files are wiring and may look alike;
- no kustomize replacement target selects a list item by its index (``spec.sources.0``): adding an
  item would move the value silently; select by a field (``[name=x]``) or by content (``[=regex]``);
  a JSON patch that names a list index (``/spec/hosts/0``) first tests that item (``op: test``), so
  a shifted list fails the render instead of changing the wrong item;
- the placeholder CLUSTER of apps/ is always the segment after ``clusters/``, which is the segment
  the base's replacements put the cluster's name into, and no cluster's render keeps a placeholder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from mlops_gitops.manifests.discover import kustomization_file, walk
from mlops_gitops.manifests.model import Obj, Problem

CLUSTERS = Path("clusters")
SHARED = CLUSTERS / "components"
BASE = "../components/base"
PLACEHOLDERS = ("GIT_REPO_URL", "GIT_REVISION", "GIT_REPOSITORY", "clusters/CLUSTER")
_CLUSTER_WORD = re.compile(r"\bCLUSTER\b")
_CLUSTER_SHAPE = re.compile(r"^(\$values/)?clusters/CLUSTER(/[^/]+)*$")


def _docs(path: Path) -> list[Any]:
    try:
        return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def cluster_folders(root: Path) -> list[Path]:
    """The clusters: folders of clusters/ whose kustomization is a Kustomization (not a Component)."""
    found = []
    for folder in sorted(p for p in (root / CLUSTERS).glob("*") if p.is_dir()):
        file = kustomization_file(folder)
        if file is not None and any(isinstance(d, dict) and d.get("kind", "Kustomization") == "Kustomization"
                                    for d in _docs(file)):
            found.append(folder)
    return found


def check_clusters(root: Path, objects: Iterable[Obj]) -> Iterator[Problem]:
    objects = list(objects)
    for folder in cluster_folders(root):
        yield from _structure(root, folder, objects)
    yield from _duplicates(root)
    yield from _store_reads(root, objects)
    yield from _positional(root)
    yield from _unguarded_indexes(root)
    yield from _placeholders(root, objects)


def _structure(root: Path, folder: Path, objects: list[Obj]) -> Iterator[Problem]:
    name = folder.name
    rel = folder.relative_to(root)
    file = kustomization_file(folder)
    assert file is not None
    [kust] = [d for d in _docs(file) if isinstance(d, dict)][:1] or [{}]
    where = str(file.relative_to(root))
    if BASE not in (kust.get("components") or []):
        yield Problem(where, f"cluster {name}", f"does not include {BASE} (what every cluster shares)")
    if "../../apps" in (kust.get("resources") or []):
        yield Problem(where, f"cluster {name}", f"lists ../../apps, which {BASE} already includes")
    if (folder / "root-app.yaml").exists():
        yield Problem(str(rel / "root-app.yaml"), f"cluster {name}",
                      f"copies the root Application; {BASE}/root-app.yaml is every cluster's")
    literals = [str(lit) for g in kust.get("configMapGenerator") or [] if isinstance(g, dict)
                and g.get("name") == "cluster-config" for lit in g.get("literals") or []]
    coordinates = dict(lit.split("=", 1) for lit in literals if "=" in lit)
    if not coordinates:
        yield Problem(where, f"cluster {name}", "has no ConfigMap cluster-config (its coordinates)")
    elif coordinates.get("cluster") != name:
        yield Problem(where, f"cluster {name}",
                      f"cluster-config says cluster={coordinates.get('cluster')}; it must be the folder's name {name}")
    read = {str(f).removeprefix("$values/") for o in objects
            if o.kind == "Application" and o.source.rendered and o.source.path == rel
            for s in (o.spec.get("sources") or []) if isinstance(s, dict)
            for f in ((s.get("helm") or {}).get("valueFiles") or [])}
    for values in sorted((folder / "values").glob("*")):
        vrel = values.relative_to(root)
        if str(vrel) not in read:
            yield Problem(str(vrel), f"cluster {name}",
                          "is read by no Application (value files are named after the chart's Application in apps/)")
        elif not any(_docs(values)):
            yield Problem(str(vrel), f"cluster {name}", "changes nothing in its chart: delete it")


def _store_reads(root: Path, objects: list[Obj]) -> Iterator[Problem]:
    """A development secret store that names the Secrets it may read (kind's Role) names every
    remote key an ExternalSecret asks for; otherwise that ExternalSecret never syncs."""
    keys = {str(ref["key"]) for o in objects if o.kind == "ExternalSecret"
            for item in (o.spec.get("data") or []) if isinstance(item, dict)
            for ref in [item.get("remoteRef")] if isinstance(ref, dict) and ref.get("key")}
    keys |= {str(ref["key"]) for o in objects if o.kind == "ExternalSecret"
             for item in (o.spec.get("dataFrom") or []) if isinstance(item, dict)
             for ref in [item.get("extract")] if isinstance(ref, dict) and ref.get("key")}
    for path in sorted((root / CLUSTERS).glob("*/secret-store/*.yaml")):
        for doc in _docs(path):
            if not isinstance(doc, dict) or doc.get("kind") != "Role":
                continue
            for rule in doc.get("rules") or []:
                names = rule.get("resourceNames") if isinstance(rule, dict) else None
                if names and "secrets" in (rule.get("resources") or []):
                    for key in sorted(keys - set(names)):
                        yield Problem(str(path.relative_to(root)), f"Role {(doc.get('metadata') or {}).get('name')}",
                                      f"cannot get the Secret {key}, which an ExternalSecret reads: add it to "
                                      "resourceNames")


def _content(path: Path) -> str:
    lines = (line.rstrip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines())
    return "\n".join(line for line in lines if line and not line.lstrip().startswith("#"))


def _duplicates(root: Path) -> Iterator[Problem]:
    clusters = cluster_folders(root)
    seen: dict[tuple[Path, str], Path] = {}
    for folder in clusters:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and kustomization_file(p.parent) != p):
            inner = path.relative_to(folder)
            content = _content(path)
            if not content:
                continue
            first = seen.setdefault((inner, content), path)
            if first != path:
                yield Problem(str(path.relative_to(root)), f"cluster {folder.name}",
                              f"repeats {first.relative_to(root)}: move what clusters share into {SHARED}/")


def _replacement_lists(root: Path) -> Iterator[tuple[Path, list[Any]]]:
    """Every kustomize replacement of the repository, with the file that holds it: inline in a
    kustomization, in a file its ``replacements: - path:`` names, or in a ReplacementTransformer."""
    for folder in walk(root):
        file = kustomization_file(folder)
        if file is not None:
            yield from _in_kustomization(folder, file)
        for path in sorted(folder.glob("*.yaml")):
            for doc in _docs(path):
                if isinstance(doc, dict) and doc.get("kind") == "ReplacementTransformer":
                    yield path, list(doc.get("replacements") or [])


def _in_kustomization(folder: Path, file: Path) -> Iterator[tuple[Path, list[Any]]]:
    for doc in _docs(file):
        for entry in (doc.get("replacements") or []) if isinstance(doc, dict) else []:
            if isinstance(entry, dict) and "path" in entry:
                ref = folder / str(entry["path"])
                for inner in _docs(ref):
                    yield ref, inner if isinstance(inner, list) else [inner]
            elif isinstance(entry, dict):
                yield file, [entry]


def _segments(field_path: str) -> list[str]:
    """A kustomize field path's segments (dots inside [...] do not split)."""
    segments, depth, current = [], 0, ""
    for char in field_path:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "." and depth == 0:
            segments.append(current)
            current = ""
        else:
            current += char
    segments.append(current)
    return segments


def _positional(root: Path) -> Iterator[Problem]:
    for path, replacements in _replacement_lists(root):
        for replacement in replacements:
            for target in replacement.get("targets") or []:
                for field_path in (target.get("fieldPaths") or []) if isinstance(target, dict) else []:
                    if any(s.isdigit() for s in _segments(str(field_path))):
                        yield Problem(str(path.relative_to(root)), "replacements",
                                      f"target {field_path} selects a list item by its position, which moves "
                                      "when an item is added; select it by a field ([name=x]) or by its content "
                                      "([=regex])")


def _placeholders(root: Path, objects: list[Obj]) -> Iterator[Problem]:
    for path in sorted((root / "apps").glob("*.yaml")):
        for doc in _docs(path):
            for text in _strings(doc):
                if _CLUSTER_WORD.search(text) and not _CLUSTER_SHAPE.match(text):
                    yield Problem(str(path.relative_to(root)), "CLUSTER",
                                  f"{text!r}: the placeholder CLUSTER must be the folder after clusters/ "
                                  "(clusters/CLUSTER/...), the segment the cluster's name replaces")
    clusters = {f.relative_to(root) for f in cluster_folders(root)}
    for obj in objects:
        if obj.source.rendered and obj.source.path in clusters:
            left = sorted({p for text in _strings(obj.body) for p in PLACEHOLDERS if p in text})
            if left:
                yield Problem.at(obj, f"keeps the placeholder {', '.join(left)}: no replacement of {BASE} "
                                      "reached it")


def _json_patches(root: Path) -> Iterator[tuple[Path, list[dict[str, Any]]]]:
    """The JSON 6902 patches of every kustomization: inline ``patch:`` text or a ``path:`` file."""
    for folder in walk(root):
        file = kustomization_file(folder)
        for doc in _docs(file) if file is not None else []:
            entries = (doc.get("patches") or []) + (doc.get("patchesJson6902") or []) if isinstance(doc, dict) else []
            for entry in entries:
                if not isinstance(entry, dict):
                    continue
                where, ops = folder / "kustomization.yaml", None
                if isinstance(entry.get("patch"), str):
                    try:
                        ops = yaml.safe_load(entry["patch"])
                    except yaml.YAMLError:
                        continue
                elif isinstance(entry.get("path"), str):
                    where = folder / entry["path"]
                    ops = (_docs(where) or [None])[0]
                if isinstance(ops, list) and ops and all(isinstance(o, dict) and "op" in o for o in ops):
                    yield where, ops


def _unguarded_indexes(root: Path) -> Iterator[Problem]:
    for path, ops in _json_patches(root):
        tested: list[str] = []
        for op in ops:
            target = str(op.get("path", ""))
            if op.get("op") == "test":
                tested.append(target)
                continue
            segments = target.split("/")
            for k, segment in enumerate(segments):
                prefix = "/".join(segments[: k + 1])
                if segment.isdigit() and not any(t == prefix or t.startswith(prefix + "/") for t in tested):
                    yield Problem(str(path.relative_to(root)), "patches",
                                  f"{op.get('op')} {target} picks a list item by its index: test that item first "
                                  f"(op: test on {prefix}/...), so a shifted list fails instead of changing "
                                  "another item")
                    break

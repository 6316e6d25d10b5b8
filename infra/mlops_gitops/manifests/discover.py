"""Find and load every Kubernetes object in the repository.

Kustomization folders are rendered with ``kubectl kustomize`` (Components, and folders used only
as another kustomization's ``transformers``/``generators``/``validators``, are inputs rather
than outputs, so they are not rendered on their own). Files a kustomization names (resources,
patches, generator sources, transformer configs) are read through the render only. Any other
``*.yaml``/``*.yml`` file holding objects with ``apiVersion`` and ``kind`` is a standalone
manifest, read as it is. One of those in a kustomization folder that its kustomization does not
list is an *orphan*: Argo CD and ``kubectl apply -k`` never see it, which is almost always a
mistake, so it is reported (and still validated, so its other problems show too).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlops_gitops.manifests.model import Obj, Problem, Source

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SKIPPED_DIRS = frozenset({".git", ".venv", "venv", "node_modules", "__pycache__", "build", "dist"})
INPUT_FIELDS = ("transformers", "generators", "validators")


@dataclass
class Loaded:
    """What discovery found: objects, problems, and the folders and files it read."""

    objects: list[Obj] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    kustomizations: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    """Standalone manifest files (orphans included), relative to the root."""
    orphans: list[Path] = field(default_factory=list)
    """Manifest files inside a kustomization folder that no kustomization lists."""
    referenced: set[Path] = field(default_factory=set)
    """Files some kustomization names (relative to the root)."""


def walk(root: Path) -> Iterator[Path]:
    """Every directory under ``root`` (itself included), skipping hidden and tool folders."""
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS and not d.startswith("."))
        yield Path(dirpath)


def kustomization_file(folder: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def _is_helm_template(path: Path, root: Path) -> bool:
    """Files of a Helm chart are templates, not manifests."""
    for parent in path.parents:
        if (parent / "Chart.yaml").is_file():
            return True
        if parent == root:
            break
    return False


def _read_yaml_docs(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def _objects(docs: list[Any], source: Source) -> Iterator[Obj]:
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            yield from _objects(doc["items"], source)
        elif isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc:
            if str(doc["apiVersion"]).startswith(("kustomize.config.k8s.io/", "builtin")):
                continue
            yield Obj(doc, source)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for sub in value.values():
            yield from _strings(sub)
    elif isinstance(value, list):
        for sub in value:
            yield from _strings(sub)


def referenced_files(folder: Path, content: dict[str, Any]) -> set[Path]:
    """Resolved paths of the files a kustomization names: every string in it that names an existing
    file relative to its folder (resources, patches, generator ``files``/``envs`` also in the
    ``key=path`` form, configurations, replacements, helm values, ...). Inline patches, URLs and
    other strings name no file and drop out."""
    found: set[Path] = set()
    for text in _strings(content):
        if not text or "\n" in text or "://" in text or len(text) > 1024:
            continue
        for candidate in {text, text.partition("=")[2]} - {""}:
            try:
                path = (folder / candidate).resolve()
                if path.is_file():
                    found.add(path)
            except (OSError, ValueError):
                continue
    return found


def _manifest_files(folder: Path, root: Path) -> Iterator[Path]:
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        if path.is_file() and path.name not in KUSTOMIZATION_FILES and not _is_helm_template(path, root):
            yield path


def render(folder: Path, kubectl: str) -> list[Any]:
    """``kubectl kustomize <folder>``: the documents it prints; raises RuntimeError on failure."""
    result = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        message = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
        raise RuntimeError(message)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


def load(root: Path, kubectl: str = "kubectl") -> Loaded:
    loaded = Loaded()
    folders = list(walk(root))
    kustomized: dict[Path, dict[str, Any]] = {}
    for folder in folders:
        kfile = kustomization_file(folder)
        if kfile is None:
            continue
        rel = kfile.relative_to(root)
        try:
            content = yaml.safe_load(kfile.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            loaded.problems.append(Problem(str(rel), "", f"invalid YAML: {' '.join(str(exc).split())}"))
            continue
        kustomized[folder] = content if isinstance(content, dict) else {}

    inputs: set[Path] = set()
    referenced: set[Path] = set()
    for folder, content in kustomized.items():
        referenced |= referenced_files(folder, content)
        for key in INPUT_FIELDS:
            for entry in content.get(key) or []:
                if isinstance(entry, str):
                    inputs.add((folder / entry).resolve())
    resolved_root = root.resolve()
    loaded.referenced = {p.relative_to(resolved_root) for p in referenced if p.is_relative_to(resolved_root)}

    for folder, content in sorted(kustomized.items()):
        rel = folder.relative_to(root)
        if content.get("kind") == "Component" or folder.resolve() in inputs:
            continue
        loaded.kustomizations.append(rel)
        source = Source(rel, rendered=True)
        try:
            docs = render(folder, kubectl)
        except (RuntimeError, subprocess.TimeoutExpired, yaml.YAMLError) as exc:
            loaded.problems.append(Problem(str(source), "", f"kubectl kustomize failed: {exc}"))
            continue
        loaded.objects.extend(_objects(docs, source))

    for folder in folders:
        in_kustomization = folder in kustomized
        for path in _manifest_files(folder, root):
            if in_kustomization and path.resolve() in referenced:
                continue  # an input of its kustomization, read through the render
            rel = path.relative_to(root)
            try:
                docs = _read_yaml_docs(path)
            except yaml.YAMLError as exc:
                loaded.problems.append(Problem(str(rel), "", f"invalid YAML: {' '.join(str(exc).split())}"))
                continue
            found = list(_objects(docs, Source(rel, rendered=False)))
            if found:
                loaded.files.append(rel)
                loaded.objects.extend(found)
                if in_kustomization:
                    loaded.orphans.append(rel)
    return loaded

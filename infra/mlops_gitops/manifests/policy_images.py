"""Policy of images: everything the platform runs or builds on is pinned, and the images built here run
as a non-root user.

- An image a chart's values set has an explicit tag (a ``repository`` with an empty ``tag`` is not),
  never ``latest``: the merged values of every chart source of a cluster's Applications.
- A CloudNativePG ``Cluster``'s ``imageName`` is pinned (the ``image:`` walk of crossref does not see it).
- Every Dockerfile of the repository is multi-stage (build tools stay out of the image), pins every
  base image (``ARG`` defaults resolved) and ends as a numeric non-root ``USER``, which Kubernetes'
  ``runAsNonRoot`` can verify.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlops_gitops.manifests import chartvalues
from mlops_gitops.manifests.crossref import split_image
from mlops_gitops.manifests.model import Obj, Problem

CNPG_GROUP = "postgresql.cnpg.io"
_ARG = re.compile(r"^ARG\s+(\w+)=(\S+)\s*$", re.M)
_FROM = re.compile(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", re.M | re.I)
_USER = re.compile(r"^USER\s+(\S+)\s*$", re.M)
_VAR = re.compile(r"\$\{?(\w+)\}?")


def pinned(image: str) -> bool:
    """A digest, or an explicit tag other than ``latest``."""
    _, tag, digest = split_image(image)
    return digest or (tag is not None and tag not in ("", "latest"))


def unpinned_value_tags(values: Any) -> Iterator[str]:
    """Where chart values set an image tag that is empty or ``latest`` (dotted paths)."""
    stack: list[tuple[str, Any]] = [("", values)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            tag = node.get("tag")
            with_repository = isinstance(node.get("repository"), str) and "tag" in node and str(tag) in ("", "latest")
            if with_repository or tag == "latest":
                yield f"{where}.tag".lstrip(".")
            stack.extend((f"{where}.{k}", v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(node))


def check_chart_values(objects: list[Obj], root: Path) -> Iterator[Problem]:
    """The merged chart values (chartvalues.app_values) of the Applications of a cluster's bundle."""
    for obj in objects:
        if obj.kind != "Application" or obj.group != "argoproj.io":
            continue
        for chart, _, values, _ in chartvalues.app_values(obj, root):
            for where in unpinned_value_tags(values):
                yield Problem.at(obj, f"chart {chart}: image {where} is not pinned (empty or latest)")


def check_image_names(obj: Obj) -> Iterator[Problem]:
    if obj.group == CNPG_GROUP and obj.kind == "Cluster":
        image = str(obj.spec.get("imageName", ""))
        if image and not pinned(image):
            yield Problem.at(obj, f"imageName {image!r} is not pinned")


def check_dockerfile(path: Path, text: str) -> Iterator[Problem]:
    """``path``: the Dockerfile, relative to the repository (for the message)."""
    where = str(path)
    args = dict(_ARG.findall(text))
    stages: set[str] = set()
    froms = _FROM.findall(text)
    if len(froms) < 2:
        yield Problem(where, "", "single-stage build: build tools and caches end up in the image "
                                 "(build in one stage, copy the result into the next)")
    bases: dict[str, str] = {}  # each base image once, however many stages start from it
    for base, stage in froms:
        resolved = _VAR.sub(lambda m: args.get(m.group(1), m.group(0)), base)
        if resolved.lower() not in stages and resolved != "scratch":
            bases.setdefault(resolved, base)
        if stage:
            stages.add(stage.lower())
    for resolved, base in bases.items():
        if "$" in resolved:
            yield Problem(where, "", f"base image {base} has no default (ARG {resolved.strip('${}')}=...)")
        elif not pinned(resolved):
            yield Problem(where, "", f"base image {resolved} is not pinned (no tag, or latest)")
    users = _USER.findall(text.split("\nFROM ")[-1] if froms else text)
    user = users[-1] if users else ""
    uid = user.split(":", 1)[0]
    if not uid.isdigit() or int(uid) == 0:
        yield Problem(where, "", f"the image's last stage runs as {user or 'root'!r}: end with a numeric "
                                 "non-root USER (runAsNonRoot can only verify a numeric uid)")


def check_dockerfiles(root: Path, dockerfiles: list[Path]) -> Iterator[Problem]:
    for path in dockerfiles:
        yield from check_dockerfile(path, (root / path).read_text(encoding="utf-8"))

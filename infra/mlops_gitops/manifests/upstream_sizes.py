"""Requests and limits for workloads a cluster installs from an upstream manifest that sets none.

Argo CD's install manifest (installed by ``hack/kind-up.sh``) gives none of its containers
requests or limits; ``clusters/<name>/argocd-resources.yaml`` holds them, keyed
``<deployment|statefulset>/<name>``. The footprint counts them, and ``hack/kind-up.sh`` applies
them after the install with the ``kubectl set resources`` arguments this module prints
(``python -m mlops_gitops.manifests.upstream_sizes FILE``: one line per workload, ``WORKLOAD
--requests=cpu=..,memory=.. --limits=cpu=..,memory=..``).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

ARGOCD_FILE = "argocd-resources.yaml"
KINDS = ("deployment", "statefulset")
_FIELDS = ("cpu", "memory")


def argocd_file(root: Path, cluster: str) -> Path:
    return root / "clusters" / cluster / ARGOCD_FILE


def load(path: Path) -> dict[str, dict[str, dict[str, str]]]:
    """``{"deployment/argocd-server": {"requests": {...}, "limits": {...}}}``; ValueError when malformed."""
    doc: Any = yaml.safe_load(path.read_text())
    if not isinstance(doc, Mapping):
        raise ValueError(f"{path}: expected a mapping of <kind>/<name> to resources")
    out: dict[str, dict[str, dict[str, str]]] = {}
    for workload, spec in doc.items():
        kind, _, name = str(workload).partition("/")
        if kind not in KINDS or not name:
            raise ValueError(f"{path}: {workload!r} is not <deployment|statefulset>/<name>")
        if not isinstance(spec, Mapping) or set(spec) != {"requests", "limits"}:
            raise ValueError(f"{path}: {workload} needs requests and limits (and nothing else)")
        for part in ("requests", "limits"):
            values = spec[part]
            if not isinstance(values, Mapping) or set(values) != set(_FIELDS):
                raise ValueError(f"{path}: {workload}.{part} needs cpu and memory")
        out[str(workload)] = {part: {k: str(spec[part][k]) for k in _FIELDS} for part in ("requests", "limits")}
    return out


def kubectl_args(resources: Mapping[str, Mapping[str, str]]) -> tuple[str, str]:
    """The ``kubectl set resources`` flags for one workload."""
    requests, limits = (f"--{part}=" + ",".join(f"{k}={resources[part][k]}" for k in _FIELDS)
                        for part in ("requests", "limits"))
    return requests, limits


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m mlops_gitops.manifests.upstream_sizes FILE", file=sys.stderr)
        return 2
    try:
        sizes = load(Path(args[0]))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for workload, resources in sizes.items():
        print(workload, *kubectl_args(resources))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Pin a cluster's project images by the digests a release pushed (``clusters/<name>/images/``).

Input: the references the push returned, ``REPOSITORY:TAG@sha256:<64 hex>``, one per project image
(``model-server``, ``mlops-jobs``, ``mlflow-server``; all three or none: a cluster never runs half a
release). Output: the cluster's Component ``clusters/<name>/images/kustomization.yaml``, which its
workflow-templates and mlflow folders and (through the models ApplicationSet's
``kustomize.components``) every model folder include:

- ``mlops-jobs`` and ``mlflow-server``: kustomize ``images`` entries with ``digest`` (``newName``
  when the push went to another repository than the manifests name, e.g. a fork's registry);
- ``model-server``: its tag comes from each model folder's ``release.env`` (``IMAGE_TAG``, which the
  promotion bot moves) through a replacement that runs after everything else, so the digest rides on
  that value: a patch turns ``IMAGE_TAG=<tag>`` into ``<tag>@sha256:...`` and the Rollout runs
  ``model-server:<tag>@sha256:...`` (the runtime pulls by the digest). The patch first *tests* that the
  folder pins the pushed tag: a folder on another tag fails to render instead of running an unpinned
  or wrong image.

``python -m mlops_gitops.manifests.digest_pins [--root DIR] [--cluster NAME] REF... | --from FILE``
(``-`` reads stdin); exit 2 with one line on bad input, nothing written.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# The project's images as the manifests name them (workflows/manifests, infra/mlflow, serving/manifests).
MANIFEST_REPOSITORY = "ghcr.io/mlops-gitops"
PROJECT_IMAGES = ("model-server", "mlops-jobs", "mlflow-server")
MODEL_SERVER = "model-server"
# The ConfigMap each model folder generates from its release.env, and the key holding the image tag.
RELEASE_CONFIGMAP = "model-server-release"
RELEASE_TAG_KEY = "IMAGE_TAG"

_REF = re.compile(r"^(?P<repository>[a-z0-9][a-z0-9._:/-]*?)(?::(?P<tag>[\w][\w.-]{0,127}))?"
                  r"@(?P<digest>sha256:[0-9a-f]{64})$")
_HEADER = """\
# The project's images pinned by digest in {cluster}: written by
# `python -m mlops_gitops.manifests.digest_pins` from the digests the release push returned
# (.github/workflows/ci.yaml, job pin-digests, which opens the pull request); do not edit by hand.
# {released}
"""


@dataclass(frozen=True)
class Ref:
    repository: str
    tag: str | None
    digest: str

    @property
    def image(self) -> str:
        return self.repository.rsplit("/", 1)[-1]


def parse(text: str) -> Ref:
    """``ghcr.io/owner/model-server:0.1.0@sha256:...`` -> Ref; ValueError with the reason."""
    match = _REF.match(text.strip())
    if not match:
        raise ValueError(f"not an image reference pinned by a sha256 digest: {text.strip()!r}")
    ref = Ref(match["repository"], match["tag"], match["digest"])
    if ref.image not in PROJECT_IMAGES:
        raise ValueError(f"{ref.repository}: not one of the project's images ({', '.join(PROJECT_IMAGES)})")
    return ref


def collect(refs: Iterable[Ref]) -> dict[str, Ref]:
    """One reference per project image, all of them; ValueError otherwise."""
    out: dict[str, Ref] = {}
    for ref in refs:
        if ref.image in out and out[ref.image] != ref:
            raise ValueError(f"two digests for {ref.image}: {out[ref.image].digest} and {ref.digest}")
        out[ref.image] = ref
    missing = [i for i in PROJECT_IMAGES if i not in out]
    if missing:
        raise ValueError(f"no digest for {', '.join(missing)}: a release pins all of {', '.join(PROJECT_IMAGES)}")
    server = out[MODEL_SERVER]
    if not server.tag:
        raise ValueError(f"{MODEL_SERVER} needs its tag (REPOSITORY:TAG@DIGEST): the model folders pin it in "
                         f"release.env ({RELEASE_TAG_KEY})")
    if server.repository != f"{MANIFEST_REPOSITORY}/{MODEL_SERVER}" and ":" in server.repository:
        raise ValueError(f"{server.repository}: a registry with a port cannot hold the model server (its tag is "
                         f"set by splitting the image at ':')")
    return out


def component(refs: Mapping[str, Ref]) -> dict[str, Any]:
    """The Component pinning ``refs`` (see the module docstring)."""
    images: list[dict[str, str]] = []
    for image in PROJECT_IMAGES:
        ref = refs[image]
        entry = {"name": f"{MANIFEST_REPOSITORY}/{image}"}
        if ref.repository != entry["name"]:
            entry["newName"] = ref.repository
        if image != MODEL_SERVER:
            entry["digest"] = ref.digest
        if len(entry) > 1:
            images.append(entry)
    server = refs[MODEL_SERVER]
    patch = [
        {"op": "test", "path": f"/data/{RELEASE_TAG_KEY}", "value": server.tag},
        {"op": "replace", "path": f"/data/{RELEASE_TAG_KEY}", "value": f"{server.tag}@{server.digest}"},
    ]
    return {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "images": images,
        "patches": [{"target": {"version": "v1", "kind": "ConfigMap", "name": RELEASE_CONFIGMAP},
                     "patch": yaml.safe_dump(patch, sort_keys=False)}],
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the patch) as literal blocks, as a person would write them."""


_Dumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None))


def component_path(root: Path, cluster: str) -> Path:
    return root / "clusters" / cluster / "images" / "kustomization.yaml"


def write(root: Path, cluster: str, refs: Mapping[str, Ref]) -> Path:
    path = component_path(root, cluster)
    if not path.is_file():
        raise ValueError(f"{path.relative_to(root)} does not exist: {cluster} takes no digest pins")
    released = ", ".join(f"{i}:{refs[i].tag or '-'}" for i in PROJECT_IMAGES)
    text = _HEADER.format(cluster=cluster, released=f"Release: {released}.")
    path.write_text(text + yaml.dump(component(refs), Dumper=_Dumper, sort_keys=False))
    return path


def pinned(root: Path, cluster: str) -> dict[str, str]:
    """Project image -> the digest the cluster's Component pins (empty before the first release)."""
    doc = yaml.safe_load(component_path(root, cluster).read_text()) or {}
    out = {str(e["name"]).rsplit("/", 1)[-1]: str(e["digest"]) for e in doc.get("images") or [] if "digest" in e}
    for entry in doc.get("patches") or []:
        if (entry.get("target") or {}).get("name") == RELEASE_CONFIGMAP:
            for op in yaml.safe_load(entry["patch"]):
                if op["op"] == "replace" and "@" in str(op["value"]):
                    out[MODEL_SERVER] = str(op["value"]).split("@", 1)[1]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlops_gitops.manifests.digest_pins",
        description="Pin a cluster's project images by the digests a release pushed (clusters/<name>/images/).")
    parser.add_argument("refs", nargs="*", metavar="REF", help="REPOSITORY:TAG@sha256:..., one per project image")
    parser.add_argument("--from", dest="source", type=Path, help="a file of references, one a line ('-': stdin)")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("--cluster", default="prod-example")
    args = parser.parse_args(argv)
    lines = list(args.refs)
    try:
        if args.source is not None:
            text = sys.stdin.read() if str(args.source) == "-" else args.source.read_text()
            lines += [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        path = write(args.root, args.cluster, collect(parse(line) for line in lines))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for image, digest in pinned(args.root, args.cluster).items():
        print(f"{image} {digest}")
    print(f"wrote {path.relative_to(args.root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

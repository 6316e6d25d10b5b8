"""The data the checks pass around: a Kubernetes object with where it came from, and a problem."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Source:
    """Where objects came from: a rendered kustomization folder or a plain manifest file."""

    path: Path  # relative to the repository root
    rendered: bool  # True for `kubectl kustomize` output

    def __str__(self) -> str:
        return f"{self.path}/" if self.rendered else str(self.path)


@dataclass(frozen=True)
class Obj:
    """One Kubernetes object and its source."""

    body: dict[str, Any] = field(hash=False, compare=False)
    source: Source

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion", ""))

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.body.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", "") or "")

    @property
    def spec(self) -> dict[str, Any]:
        spec = self.body.get("spec")
        return spec if isinstance(spec, dict) else {}

    def ref(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{ns}{self.name}"


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong, printed as one line: ``<source>: <object>: <message>``."""

    source: str
    subject: str
    message: str

    def __str__(self) -> str:
        subject = f" {self.subject}:" if self.subject else ""
        return f"{self.source}:{subject} {self.message}"

    @classmethod
    def at(cls, obj: Obj, message: str) -> Problem:
        return cls(str(obj.source), obj.ref(), message)

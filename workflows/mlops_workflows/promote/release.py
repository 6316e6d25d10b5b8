"""The release pin of a model in an environment: ``<models_dir>/<model>/<env>/release.env``.

The file is ``KEY=VALUE`` lines with comments (a kustomize ``configMapGenerator`` env file). The bot
changes exactly one line, ``MODEL_VERSION=<n>``, and keeps every other byte: comments, order,
other keys and the line ending. An empty ``MODEL_VERSION=`` pins nothing (a fresh clone): the
environment runs no model server until the first promotion pull request brings a version in.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from mlops_platform.errors import ConfigError, InvalidInputError
from mlops_platform.model_names import check_model_name
from mlops_platform.registry_names import ENVIRONMENTS

RELEASE_FILE = "release.env"
KEY_MODEL_VERSION = "MODEL_VERSION"
KEY_IMAGE_TAG = "IMAGE_TAG"

_LINE = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>[^\r\n]*)(?P<eol>\r?\n?)$")


def check_environment(env: str) -> str:
    if env not in ENVIRONMENTS:
        raise InvalidInputError(f"unknown environment {env!r}; expected one of {', '.join(ENVIRONMENTS)}")
    return env


def release_path(models_dir: str, model: str, env: str) -> str:
    """Repository-relative POSIX path of the release file (what Git trees use)."""
    return str(PurePosixPath(models_dir) / check_model_name(model) / check_environment(env) / RELEASE_FILE)


def parse_release(text: str) -> dict[str, str]:
    """The KEY=VALUE pairs of a release file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ConfigError(f"release file line is not KEY=VALUE: {stripped!r}")
        values[match["key"]] = match["value"].strip()
    return values


def pinned_version(text: str, where: str = "release file") -> int | None:
    """The version ``text`` pins, or None when its ``MODEL_VERSION=`` is empty (nothing pinned)."""
    value = parse_release(text).get(KEY_MODEL_VERSION)
    if value is None:
        raise ConfigError(f"{where} has no {KEY_MODEL_VERSION}= line")
    if value == "":
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 18 or int(value) < 1:
        shown = value if len(value) <= 30 else f"{value[:27]}... ({len(value)} characters)"
        raise ConfigError(f"{where}: {KEY_MODEL_VERSION}={shown!r} is not a version number")
    return int(value)


UNPINNED_COMPONENT = "components/unpinned"
"""The kustomize component an environment folder lists while it pins nothing (no pods)."""


def kustomization_path(release_file: str) -> str:
    return str(PurePosixPath(release_file).parent / "kustomization.yaml")


def drop_unpinned(text: str) -> str:
    """A folder's kustomization.yaml without the unpinned component (and its comment line)."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    for line in lines:
        if line.strip().startswith("- ") and line.strip().rstrip("/").endswith(UNPINNED_COMPONENT):
            if out and out[-1].lstrip().startswith("# Nothing pinned yet"):
                out.pop()
            continue
        out.append(line)
    return "".join(out)


def set_model_version(text: str, version: int, where: str = "release file") -> str:
    """``text`` with its one ``MODEL_VERSION=`` line set to ``version``; nothing else changes."""
    if version < 1:
        raise InvalidInputError(f"version must be a positive number, got {version}")
    lines = text.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if (m := _LINE.match(line)) and m["key"] == KEY_MODEL_VERSION]
    if len(hits) != 1:
        raise ConfigError(f"{where} must have exactly one {KEY_MODEL_VERSION}= line, found {len(hits)}")
    match = _LINE.match(lines[hits[0]])
    assert match is not None
    lines[hits[0]] = f"{KEY_MODEL_VERSION}={version}{match['eol']}"
    return "".join(lines)

"""Where a model came from: the git commit, branch and remote of the working tree that trained it.

Read with two ``git`` commands, once per training run. They also give the run's ``mlflow.source.git.*``
tags, which MLflow would otherwise look up again for the file the process started from, through
GitPython (its import and four more ``git`` processes per run).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True)
class GitState:
    commit: str  # full SHA, or "unknown" outside a git work tree
    dirty: bool
    branch: str | None = None  # None when HEAD is detached or outside a git work tree
    remote_url: str | None = None  # the first remote's URL without credentials, if there is a remote

    @property
    def label(self) -> str:
        return f"{self.commit[:12]}{' (uncommitted changes)' if self.dirty else ''}"


UNKNOWN = GitState("unknown", False)


def git_state(path: Path) -> GitState:
    folder = path if path.is_dir() else path.parent
    try:
        status = _git(folder, "status", "--porcelain=v2", "--branch", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    headers = {}
    dirty = False
    for line in status.splitlines():
        if line.startswith("# "):
            key, _, value = line[2:].partition(" ")
            headers[key] = value
        elif line.strip():
            dirty = True
    commit, branch = headers.get("branch.oid", ""), headers.get("branch.head")
    if len(commit) < 40:  # "(initial)": no commit yet
        return UNKNOWN
    try:
        remotes = _git(folder, "config", "--local", "--get-regexp", r"^remote\..*\.url$").splitlines()
    except (OSError, subprocess.SubprocessError):  # exit 1: no remote
        remotes = []
    url = remotes[0].partition(" ")[2].strip() if remotes else ""
    return GitState(
        commit,
        dirty,
        branch=branch if branch and branch != "(detached)" else None,
        remote_url=without_credentials(url) if url else None,
    )


def without_credentials(url: str) -> str:
    """``url`` without a user or token (``https://user:token@host/x`` -> ``https://host/x``); URLs
    without a scheme (``git@host:org/repo.git``) have none to drop."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=folder, capture_output=True, text=True, check=True, timeout=10
    ).stdout

"""Where a model came from: the git commit of the working tree that trained it."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GitState:
    commit: str  # full SHA, or "unknown" outside a git work tree
    dirty: bool

    @property
    def label(self) -> str:
        return f"{self.commit[:12]}{' (uncommitted changes)' if self.dirty else ''}"


def git_state(path: Path) -> GitState:
    folder = path if path.is_dir() else path.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return GitState("unknown", False)
    return GitState(commit, bool(status.strip()))

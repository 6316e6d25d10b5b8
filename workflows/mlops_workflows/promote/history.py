"""Which version ran in an environment when: the history of its release file on the base branch.

Read along the first-parent line of the base branch, so each entry is the moment the change landed
there (a merge, squash or direct commit), whoever authored the change on its branch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from mlops_platform.errors import ConfigError
from mlops_workflows.promote.git_ops import Workspace
from mlops_workflows.promote.release import KEY_IMAGE_TAG, parse_release, pinned_version

_PR_REF = re.compile(r"(?:#|!)(\d+)\b")


@dataclass(frozen=True)
class Pin:
    version: int
    image_tag: str
    commit: str
    landed: datetime
    author: str
    subject: str

    @property
    def pr_number(self) -> int | None:
        match = _PR_REF.search(self.subject)
        return int(match.group(1)) if match else None


def release_history(workspace: Workspace, rev: str, path: str) -> list[Pin]:
    """Every change of the pinned version at ``path`` along ``rev``, oldest first."""
    pins: list[Pin] = []
    for commit in reversed(list(workspace.first_parent_history(rev, path))):
        text = workspace.read(commit, path)
        if text is None:
            continue
        try:
            version = pinned_version(text, f"{path} at {commit.hexsha[:12]}")
        except ConfigError:
            continue
        if version is None:  # nothing pinned (a fresh clone): no version ran
            continue
        if pins and pins[-1].version == version:
            continue
        pins.append(
            Pin(
                version=version,
                image_tag=parse_release(text).get(KEY_IMAGE_TAG, "-"),
                commit=commit.hexsha,
                landed=datetime.fromtimestamp(commit.committed_date, tz=UTC),
                author=str(commit.author.name),
                subject=str(commit.summary),
            )
        )
    return pins


def previous_pin(pins: list[Pin], current: int) -> Pin | None:
    """The pin before the latest stretch of ``current``: what to roll back to."""
    for index in range(len(pins) - 1, -1, -1):
        if pins[index].version == current:
            return pins[index - 1] if index > 0 else None
    return None


def format_history(pins: list[Pin], model: str, env: str) -> str:
    from mlops_workflows.models import _table

    if not pins:
        return f"no history of {model} in {env}"
    rows = []
    for index, pin in enumerate(pins):
        until = pins[index + 1].landed.strftime("%Y-%m-%d %H:%M:%SZ") if index + 1 < len(pins) else "now"
        rows.append(
            [
                f"v{pin.version}",
                pin.image_tag,
                pin.landed.strftime("%Y-%m-%d %H:%M:%SZ"),
                until,
                pin.commit[:12],
                pin.subject if len(pin.subject) <= 72 else pin.subject[:69] + "...",
            ]
        )
    header = f"{model} in {env} (from Git history, oldest first)"
    return header + "\n" + _table(["VERSION", "IMAGE", "FROM", "UNTIL", "COMMIT", "CHANGE"], rows)

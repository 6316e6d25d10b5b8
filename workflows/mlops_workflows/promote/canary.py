"""What merging a release change does: the canary steps of the rendered Rollout, in words.

The steps are read from ``kubectl kustomize`` of the model's environment folder at the base
commit, so the model card shows what Argo Rollouts will actually run rather than a copy.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from git import Commit

    from mlops_workflows.promote.git_ops import Workspace

log = logging.getLogger(__name__)


def render(kubectl: str, folder: Path) -> list[dict[str, Any]]:
    """Objects of ``kubectl kustomize folder``."""
    binary = shutil.which(kubectl)
    if binary is None:
        raise FileNotFoundError(f"{kubectl} not found")
    out = subprocess.run([binary, "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return [doc for doc in yaml.safe_load_all(out.stdout) if isinstance(doc, dict)]


def _arg_summary(args: list[Any]) -> str:
    shown = [f"{a['name']}={a['value']}" for a in args if isinstance(a, dict) and "value" in a]
    return ", ".join(shown)


def describe_steps(objects: list[dict[str, Any]]) -> list[str]:
    rollouts = [o for o in objects if o.get("kind") == "Rollout"]
    if not rollouts:
        return []
    canary = rollouts[0].get("spec", {}).get("strategy", {}).get("canary", {})
    lines: list[str] = []
    for step in canary.get("steps") or []:
        if "setWeight" in step:
            lines.append(f"send {step['setWeight']}% of the traffic to the new version")
        elif "pause" in step:
            duration = (step["pause"] or {}).get("duration")
            lines.append(f"wait {duration}" if duration else "pause until a person promotes the rollout")
        elif "analysis" in step:
            analysis = step["analysis"]
            names = ", ".join(t.get("templateName", "?") for t in analysis.get("templates", []))
            summary = _arg_summary(analysis.get("args", []))
            lines.append(f"analysis {names}" + (f" ({summary})" if summary else ""))
        else:
            lines.append(f"step {step}")
    return lines


def merge_effect(workspace: Workspace, commit: Commit, models_dir: str, model: str, env: str, kubectl: str) -> str:
    """Markdown: what Argo CD and Argo Rollouts do once the change is on the base branch."""
    folder = f"{models_dir}/{model}/{env}"
    try:
        with tempfile.TemporaryDirectory(prefix="mlops-render-") as tmp:
            top = folder.split("/")[0]
            workspace.export(commit, top, Path(tmp))
            steps = describe_steps(render(kubectl, Path(tmp) / folder))
    except (FileNotFoundError, RuntimeError, OSError, subprocess.SubprocessError, yaml.YAMLError) as exc:
        log.debug("cannot render %s: %s", folder, exc)
        steps = []
        note = f"(could not render `{folder}` with `{kubectl} kustomize`: {exc})"
    else:
        note = ""
    intro = (
        f"Argo CD syncs `{folder}`; the new release ConfigMap (a new name hash) changes the Rollout's pod "
        "template, and Argo Rollouts starts a canary:"
    )
    body = "\n".join(f"{i}. {line}" for i, line in enumerate(steps, 1)) if steps else note
    outro = (
        "A failed analysis aborts the canary and sends all traffic back to the stable version; Git still "
        f"pins the new version then, so run `mlops promote --revert-aborted {model} --env {env}` (or let the "
        "notification hook do it). Once the rollout is healthy, "
        f"`mlops promote {model} --to {env} --finalize` moves the MLflow alias `{env}`."
    )
    return f"{intro}\n\n{body}\n\n{outro}"

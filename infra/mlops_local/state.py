"""The rollout state file: what the runner writes at every change and ``mlops rollout status`` reads.

One JSON document ``{"rollouts": {"<namespace>/<name>": ROLLOUT}, "canaries": [ROLLOUT, ...]}``;
``rollouts`` holds each Rollout's current state, ``canaries`` every canary that ended (completed,
aborted or paused), oldest first. A ROLLOUT has ``name``, ``namespace``, ``revision``, ``phase``
(Progressing, Paused, Healthy, Degraded), ``stable`` / ``canary`` (``{"hash", "version"}``),
``message``, ``outcome`` and ``steps``: ``{"index", "action", "status", "weight", "requests",
"canary_requests", "share", "metrics": [{"name", "phase", "value"}]}`` — what the Argo Rollouts
dashboard shows, plus the traffic share measured through Envoy at each weight.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.data: dict[str, Any] = {"rollouts": {}, "canaries": []}

    def put(self, rollout: dict[str, Any], *, finished: bool = False) -> None:
        with self.lock:
            rollout["updated_at"] = time.time()
            key = f"{rollout['namespace']}/{rollout['name']}"
            self.data["rollouts"][key] = json.loads(json.dumps(rollout))
            if finished:
                self.data["canaries"].append(json.loads(json.dumps(rollout)))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=1))
            os.replace(tmp, self.path)


def load(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return {"rollouts": {}, "canaries": []}
    return data


def _share(step: dict[str, Any]) -> str:
    if step.get("share") is None:
        return ""
    return f"{100 * step['share']:.1f}%"


def format_rollout(rollout: dict[str, Any]) -> str:
    stable, canary = rollout.get("stable") or {}, rollout.get("canary") or {}
    head = (f"{rollout['namespace']}/{rollout['name']}  revision {rollout.get('revision', '-')}  "
            f"{rollout.get('phase', '-')}  stable v{stable.get('version', '-')} ({stable.get('hash', '-')})")
    if canary:
        head += f"  canary v{canary.get('version', '-')} ({canary.get('hash', '-')})"
    lines = [head]
    if rollout.get("message"):
        lines.append(f"  {rollout['message']}")
    if rollout.get("steps"):
        lines.append(f"  {'STEP':<5}{'ACTION':<24}{'STATUS':<13}{'WEIGHT':>7}{'MEASURED':>10}{'REQUESTS':>10}"
                     "  ANALYSIS")
        for step in rollout["steps"]:
            metrics = "; ".join(f"{m['name']} {m['phase']} {m.get('value', '')}".rstrip()
                                for m in step.get("metrics") or [])
            weight = "" if step.get("weight") is None else f"{step['weight']}%"
            requests = "" if not step.get("requests") else str(step["requests"])
            lines.append(f"  {step['index']:<5}{step['action']:<24}{step['status']:<13}{weight:>7}"
                         f"{_share(step):>10}{requests:>10}  {metrics}")
    return "\n".join(lines)


def format_state(data: dict[str, Any], name: str | None = None) -> str:
    rollouts = [r for key, r in sorted(data.get("rollouts", {}).items()) if name in (None, key, r["name"])]
    if not rollouts:
        return "no rollout" + (f" named {name}" if name else "") + " in the state file"
    return "\n\n".join(format_rollout(r) for r in rollouts)


__all__ = ["StateFile", "format_rollout", "format_state", "load"]

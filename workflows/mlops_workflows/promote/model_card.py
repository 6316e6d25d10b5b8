"""The model card: the body of a promotion (or rollback) pull request, in Markdown."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from mlops_platform import registry_names as reg
from mlops_platform.registry import Registry
from mlops_workflows.models import KEY_METRICS
from mlops_workflows.promote.gates import Check

LOWER_IS_BETTER = frozenset({"log_loss"})
MARKER = "<!-- mlops-promote"


@dataclass(frozen=True)
class VersionFacts:
    """What the registry knows about one version (or that it does not know it)."""

    version: int | None  # None: nothing (an environment that pins no version yet)
    registered: bool = False
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None
    run_url: str | None = None
    version_url: str | None = None

    @property
    def label(self) -> str:
        return f"v{self.version}" if self.version is not None else "no version"

    @property
    def lineage(self) -> dict[str, str]:
        return {
            "run id": self.run_id or "-",
            "dataset digest": self.tags.get(reg.TAG_DATASET_DIGEST, "-"),
            "dataset source": self.tags.get(reg.TAG_DATASET_SOURCE, "-"),
            "source commit": self.tags.get(reg.TAG_GIT_COMMIT, "-"),
        }


def facts(registry: Registry, model: str, version: int | None) -> VersionFacts:
    from mlops_platform.errors import NotFoundError

    if version is None:
        return VersionFacts(None)
    try:
        mv = registry.get_version(model, version=version)
    except NotFoundError:
        return VersionFacts(version)
    metrics: dict[str, float] = {}
    run_url = None
    if mv.run_id:
        try:
            run = registry.get_run(mv.run_id)
            metrics = {k: float(v) for k, v in run.data.metrics.items()}
            run_url = registry.run_url(run.info.experiment_id, mv.run_id)
        except Exception:  # a deleted run leaves the version without metrics, not the card without a body
            metrics = {}
    base = registry.settings.ui_url
    version_url = f"{base}/#/models/{quote(model)}/versions/{version}" if base else f"models:/{model}/{version}"
    return VersionFacts(
        version=version,
        registered=True,
        metrics=metrics,
        tags=dict(mv.tags or {}),
        run_id=mv.run_id,
        run_url=run_url,
        version_url=version_url,
    )


def _delta(name: str, old: float | None, new: float | None) -> str:
    if old is None or new is None:
        return "-"
    delta = new - old
    if abs(delta) < 5e-5:
        return "±0"
    better = (delta < 0) if name in LOWER_IS_BETTER else (delta > 0)
    return f"{delta:+.4f} {'(better)' if better else '(worse)'}"


def metrics_table(current: VersionFacts, candidate: VersionFacts, env: str) -> str:
    names = [m for m in KEY_METRICS if m in candidate.metrics or m in current.metrics]
    if not names:
        return "_No metrics recorded for either version._"
    rows = [
        f"| metric | {current.label} (in {env} now) | v{candidate.version} (proposed) | delta |",
        "|---|---:|---:|---:|",
    ]
    for name in names:
        old, new = current.metrics.get(name), candidate.metrics.get(name)
        shown_old = f"{old:.4f}" if old is not None else "-"
        shown_new = f"{new:.4f}" if new is not None else "-"
        rows.append(f"| {name} | {shown_old} | {shown_new} | {_delta(name, old, new)} |")
    note = "" if current.registered else f"\n\n_{current.label} is not in the registry; no comparison._"
    return "\n".join(rows) + note


def _gate_reasons(tags: dict[str, str]) -> list[str]:
    raw = tags.get(reg.TAG_GATE_REASONS)
    if not raw:
        return []
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        return [raw]
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


def render_card(
    *,
    kind: str,
    model: str,
    env: str,
    release_file: str,
    current: VersionFacts,
    candidate: VersionFacts,
    checks: list[Check],
    drift: str,
    merge_effect: str,
    reason: str | None = None,
) -> str:
    verb = "Promote" if kind == "promote" else "Roll back"
    now = current.version if current.version is not None else ""
    lines = [
        f"## {verb} `{model}` to v{candidate.version} in {env}",
        "",
        f"This pull request changes one line, `MODEL_VERSION={now}` → `MODEL_VERSION="
        f"{candidate.version}`, in `{release_file}`. Opened by the promotion bot; review it like code.",
    ]
    if reason:
        lines += ["", f"**Reason:** {reason}"]
    lines += ["", "### Metrics (holdout of each version's training run)", "", metrics_table(current, candidate, env)]
    lines += ["", "### Gates", ""]
    lines += [
        f"- {'✅' if c.passed else ('❌' if c.passed is False else '➖')} **{c.name}**: {c.message}" for c in checks
    ]
    reasons = _gate_reasons(candidate.tags)
    if reasons:
        lines += ["", f"Evaluation gate of v{candidate.version} ({candidate.tags.get(reg.TAG_GATE, '-')}):", ""]
        lines += [f"- {r}" for r in reasons]
    lines += ["", "### Lineage", "", "| | proposed | now |", "|---|---|---|"]
    for key, value in candidate.lineage.items():
        lines.append(f"| {key} | `{value}` | `{current.lineage[key]}` |")
    lines.append(f"| training config | `{candidate.tags.get(reg.TAG_CONFIG, '-')}` | |")
    lines += ["", "### MLflow", ""]
    for label, item in (("proposed", candidate), ("now", current)):
        if item.registered:
            lines.append(f"- v{item.version} ({label}): {item.version_url}; run: {item.run_url or '-'}")
        else:
            lines.append(f"- {item.label} ({label}): not in the registry")
    lines += ["", "### Drift", "", drift, "", "### What happens on merge", "", merge_effect, ""]
    lines.append(f"{MARKER} kind={kind} model={model} env={env} version={candidate.version} -->")
    return "\n".join(lines)

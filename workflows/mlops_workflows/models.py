"""`mlops models list` and `mlops models show`: what the registry holds, for people."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from mlops_platform import registry_names as reg
from mlops_platform.registry import Registry

KEY_METRICS = ("accuracy", "f1_macro", "roc_auc_ovr", "log_loss")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _aliases_by_version(model: Any) -> dict[str, list[str]]:
    by_version: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        by_version.setdefault(str(version), []).append(alias)
    return {v: sorted(a) for v, a in by_version.items()}


def _when(millis: int | None) -> str:
    if not millis:
        return "-"
    return datetime.fromtimestamp(millis / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def list_models(registry: Registry) -> str:
    models = registry.list_models()
    if not models:
        return "no registered models"
    rows = []
    for model in models:
        versions = registry.list_versions(model.name)
        latest = versions[-1] if versions else None
        aliases = ", ".join(f"{a}=v{v}" for a, v in sorted((model.aliases or {}).items())) or "-"
        rows.append(
            [
                model.name,
                str(len(versions)),
                f"v{latest.version}" if latest else "-",
                (latest.tags or {}).get(reg.TAG_GATE, "-") if latest else "-",
                aliases,
                _when(model.last_updated_timestamp),
            ]
        )
    return _table(["MODEL", "VERSIONS", "LATEST", "LATEST GATE", "ALIASES", "UPDATED"], rows)


def _metrics_of(registry: Registry, run_id: str | None) -> dict[str, float]:
    if not run_id:
        return {}
    return dict(registry.get_run(run_id).data.metrics)


def show_model(registry: Registry, name: str, version: str | None = None) -> str:
    model = registry.get_model(name)
    aliases = _aliases_by_version(model)
    if version is None:
        rows = []
        for mv in registry.list_versions(name):
            metrics = _metrics_of(registry, mv.run_id)
            rows.append(
                [
                    f"v{mv.version}",
                    ", ".join(aliases.get(str(mv.version), [])) or "-",
                    (mv.tags or {}).get(reg.TAG_GATE, "-"),
                    *(f"{metrics[m]:.4f}" if m in metrics else "-" for m in KEY_METRICS),
                    _when(mv.creation_timestamp),
                ]
            )
        header = f"{name}" + (f": {model.description}" if model.description else "")
        return (
            header
            + "\n"
            + _table(["VERSION", "ALIASES", "GATE", *(m.upper() for m in KEY_METRICS), "CREATED"], rows)
        )
    mv = registry.get_version(name, version=version)
    tags = mv.tags or {}
    metrics = _metrics_of(registry, mv.run_id)
    try:
        reasons = json.loads(tags.get(reg.TAG_GATE_REASONS, "[]"))
    except json.JSONDecodeError:
        reasons = [tags.get(reg.TAG_GATE_REASONS, "")]
    lines = [
        f"{name} v{mv.version}",
        f"  aliases:        {', '.join(aliases.get(str(mv.version), [])) or '-'}",
        f"  created:        {_when(mv.creation_timestamp)}",
        f"  gate:           {tags.get(reg.TAG_GATE, '-')}",
        *(f"    - {r}" for r in reasons),
        "  metrics:",
        *(f"    {k:<24} {v:.4f}" for k, v in sorted(metrics.items()) if not k.startswith("production.")),
        "  lineage:",
        f"    run:            {mv.run_id}",
        f"    dataset:        {tags.get(reg.TAG_DATASET_SOURCE, '-')} (digest {tags.get(reg.TAG_DATASET_DIGEST, '-')})",
        f"    git commit:     {tags.get(reg.TAG_GIT_COMMIT, '-')}",
        f"    config:         {tags.get(reg.TAG_CONFIG, '-')}",
        f"    baseline:       {tags.get(reg.TAG_BASELINE, '-')}",
        f"    model source:   {mv.source}",
    ]
    return "\n".join(lines)

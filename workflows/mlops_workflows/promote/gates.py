"""The checks a version must pass before the bot writes anything.

Promotion: the version exists and has ``gate=passed``; it runs in the previous environment
(staging before production): Git's release there pins it, and its rollout there completed (the
environment's alias, moved by ``--finalize``, holds it and its ``promotion.<env>.*`` tags say
when); when Prometheus is configured, that version is healthy
in the previous environment (error ratio, enough traffic, no firing drift alert) over a window;
and the target environment does not already run it. A rollback needs only the first and the last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mlops_platform import registry_names as reg
from mlops_platform.errors import GateFailedError, NotFoundError
from mlops_platform.registry import Registry
from mlops_workflows.promote.health import Prometheus, health, namespace_of
from mlops_workflows.promote.settings import PromotionSettings


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool | None  # None: skipped
    message: str

    @property
    def mark(self) -> str:
        return {True: "ok", False: "FAIL", None: "skip"}[self.passed]


def previous_environment(env: str) -> str | None:
    index = reg.ENVIRONMENTS.index(env)
    return reg.ENVIRONMENTS[index - 1] if index > 0 else None


def resolve(registry: Registry, model: str, version: int | None, alias: str | None) -> tuple[Any | None, Check]:
    """The model version to promote (by number or alias) and the check that it exists."""
    try:
        if version is not None:
            mv = registry.get_version(model, version=version)
        else:
            mv = registry.get_version(model, alias=alias)
    except NotFoundError as exc:
        return None, Check("registered", False, str(exc))
    how = f"alias {alias!r}" if version is None else "number"
    return mv, Check("registered", True, f"{model} v{mv.version} is registered (chosen by {how})")


def gate_check(mv: Any) -> Check:
    tags = mv.tags or {}
    value = tags.get(reg.TAG_GATE)
    if value == reg.GATE_PASSED:
        return Check("evaluation gate", True, f"v{mv.version} has {reg.TAG_GATE}=passed")
    shown = f"{reg.TAG_GATE}={value}" if value else f"no {reg.TAG_GATE} tag"
    return Check("evaluation gate", False, f"v{mv.version} has {shown}, not {reg.TAG_GATE}=passed")


def alias_check(registry: Registry, model: str, mv: Any, env: str, previous_pin: int | None = None) -> Check:
    """The version runs in the environment before ``env``: Git pins it there and its rollout completed.

    ``previous_pin`` is the version Git's release of the previous environment pins (None: nothing).
    """
    previous = previous_environment(env)
    if previous is None:
        return Check("previous environment", None, f"{env} is the first environment")
    version = str(mv.version)
    if previous_pin is None or str(previous_pin) != version:
        pinned = f"v{previous_pin}" if previous_pin is not None else "no version"
        return Check(
            "previous environment",
            False,
            f"Git's {previous} release pins {pinned}, not v{version}; promote to {previous} first",
        )
    holder = registry.version_by_alias(model, previous)
    if holder is None or str(holder.version) != version:
        held = f"v{holder.version} holds it" if holder is not None else "no version holds it"
        return Check(
            "previous environment",
            False,
            f"v{version} does not hold alias {previous!r} ({held}): its {previous} rollout has not completed "
            f"(finalized by `mlops promote {model} --to {previous} --finalize`)",
        )
    tags = mv.tags or {}
    commit = tags.get(reg.TAG_PROMOTION_COMMIT.format(env=previous))
    finalized = tags.get(reg.TAG_PROMOTION_FINALIZED.format(env=previous))
    if not commit or not finalized:
        return Check(
            "previous environment",
            False,
            f"v{version} holds alias {previous!r} but has no {reg.TAG_PROMOTION_COMMIT.format(env=previous)} / "
            f"{reg.TAG_PROMOTION_FINALIZED.format(env=previous)} tags: its {previous} rollout was not finalized",
        )
    return Check(
        "previous environment",
        True,
        f"v{version} runs in {previous}: Git pins it, alias {previous!r} holds it, rollout finalized at "
        f"{finalized} (commit {commit[:12]})",
    )


def health_check(settings: PromotionSettings, model: str, mv: Any, env: str) -> Check:
    previous = previous_environment(env)
    if previous is None:
        return Check("health", None, f"{env} is the first environment")
    if not settings.prometheus_url:
        return Check("health", None, f"{previous} health not checked (MLOPS_PROMETHEUS_URL is not set)")
    prometheus = Prometheus(settings.prometheus_url, settings.api_timeout_s)
    version = int(mv.version)
    found = health(prometheus, previous, model, version, settings.health_window, settings.drift_alert_pattern)
    where = f"in {namespace_of(previous)} over {settings.health_window}"
    problems = []
    if found.requests < settings.min_requests:
        problems.append(f"{found.requests:.0f} requests {where}, fewer than {settings.min_requests:g}")
    ratio = found.error_ratio
    if not math.isnan(ratio) and ratio > settings.max_error_ratio:
        problems.append(f"error ratio {ratio:.2%} {where} is above {settings.max_error_ratio:.2%}")
    if found.drift_alerts:
        problems.append(f"drift alert firing: {', '.join(found.drift_alerts)}")
    if problems:
        return Check("health", False, f"v{version} is unhealthy in {previous}: " + "; ".join(problems))
    shown = "n/a" if math.isnan(ratio) else f"{ratio:.2%}"
    return Check(
        "health",
        True,
        f"v{version} in {previous}: {found.requests:.0f} requests, error ratio {shown} {where}; no drift alert",
    )


def not_running_check(env: str, pinned: int | None, version: int) -> Check:
    if pinned == version:
        return Check("not already running", False, f"{env} already runs v{version} (Git pins it)")
    if pinned is None:
        return Check("not already running", True, f"{env} runs no version yet (Git pins none)")
    return Check("not already running", True, f"{env} runs v{pinned} now")


def enforce(checks: list[Check], what: str) -> None:
    failed = [c for c in checks if c.passed is False]
    if failed:
        raise GateFailedError(f"{what} refused: " + "; ".join(f"[{c.name}] {c.message}" for c in failed))


def format_checks(checks: list[Check]) -> str:
    return "\n".join(f"  [{c.mark}] {c.name}: {c.message}" for c in checks)

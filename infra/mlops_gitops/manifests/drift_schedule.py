"""The drift schedule and the staleness alert's expected interval, linked.

Each drift CronWorkflow (one whose workflow is the ``drift-check`` WorkflowTemplate) runs on a cron
schedule; every drift run pushes ``mlops_drift_expected_interval_seconds`` from
``MLOPS_DRIFT_SCHEDULE_INTERVAL_S`` (the ``mlops-workflow-env`` ConfigMap, or the drift step's own
``env``), and the staleness alerts (``infra/monitoring/rules/prometheusrule-drift.yaml``) fire after
twice that without a successful run. The check: the value the drift step gets equals the longest
gap between two runs of each drift CronWorkflow's schedule, so a schedule changed without the
setting (or the reverse) fails ``hack/validate`` instead of paging on a healthy check or staying
silent on a dead one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from mlops_gitops.manifests.model import Obj, Problem
from mlops_platform.durations import DurationError, parse_go_duration

DRIFT_TEMPLATE = "drift-check"
DRIFT_STEP = "drift"
ENV_CONFIGMAP = "mlops-workflow-env"
SETTING = "MLOPS_DRIFT_SCHEDULE_INTERVAL_S"

_MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_NAMES = {
    **{m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                   "dec"), start=1)},
    **{d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
}
_FIELDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))  # minute hour day-of-month month day-of-week
_START = datetime(2024, 1, 1, tzinfo=UTC)  # a leap year, so that every calendar rule occurs
_DAYS = 2 * 366


class CronError(ValueError):
    """Not a cron schedule this check understands."""


def _value(text: str) -> int:
    return _NAMES[text.lower()] if text.lower() in _NAMES else int(text)


def _field(text: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-", 1)
            start, end = _value(first), _value(last)
        else:
            start = _value(base)
            end = high if step_text else start
        if step < 1 or not low <= start <= end <= high:
            raise CronError(f"{part!r} is out of range {low}-{high}")
        values.update(range(start, end + 1, step))
    return values


def fire_times(schedule: str, days: int = _DAYS) -> list[datetime]:
    """When a standard five-field cron schedule (or an ``@`` macro) fires over ``days`` days."""
    text = _MACROS.get(schedule.strip().lower(), schedule.strip())
    if text.lower().startswith("@every "):
        try:
            every = parse_go_duration(text[len("@every ") :])
        except DurationError as exc:
            raise CronError(str(exc)) from None
        if every <= 0:
            raise CronError(f"{schedule!r}: the interval must be positive")
        count = int(days * 86400 // every)
        return [_START + timedelta(seconds=every * i) for i in range(count + 1)]
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"{schedule!r}: expected five fields (minute hour day-of-month month day-of-week)")
    try:
        minutes, hours, doms, months, dows = (_field(p, lo, hi) for p, (lo, hi) in zip(parts, _FIELDS, strict=True))
    except (KeyError, ValueError) as exc:
        raise CronError(f"{schedule!r}: {exc}") from None
    dows = {d % 7 for d in dows}
    any_dom, any_dow = parts[2].startswith("*"), parts[4].startswith("*")
    times: list[datetime] = []
    for offset in range(days):
        day = _START + timedelta(days=offset)
        dom_ok, dow_ok = day.day in doms, (day.weekday() + 1) % 7 in dows
        # cron's rule: with both day fields restricted, either one matching is enough
        matches = (dom_ok and dow_ok) if any_dom or any_dow else (dom_ok or dow_ok)
        if day.month in months and matches:
            times.extend(day.replace(hour=h, minute=m) for h in sorted(hours) for m in sorted(minutes))
    return times


def longest_gap_s(schedules: Sequence[str]) -> float:
    """The longest time between two consecutive runs of the union of ``schedules``, in seconds."""
    times = sorted({t for schedule in schedules for t in fire_times(schedule)})
    if len(times) < 2:
        raise CronError(f"{', '.join(schedules)}: fires less than twice in {_DAYS} days")
    return max((b - a).total_seconds() for a, b in itertools.pairwise(times))


def _env_value(container: dict[str, Any]) -> str | None:
    for item in container.get("env") or []:
        if isinstance(item, dict) and item.get("name") == SETTING:
            return str(item.get("value", ""))
    return None


def expected_interval(objects: Iterable[Obj]) -> tuple[float | None, str]:
    """What the drift step pushes as its expected interval, and where that comes from."""
    objects = list(objects)
    for template in objects:
        if template.kind == "WorkflowTemplate" and template.name == DRIFT_TEMPLATE:
            for step in template.spec.get("templates") or []:
                if isinstance(step, dict) and step.get("name") == DRIFT_STEP:
                    value = _env_value(step.get("container") or {})
                    if value is not None:
                        return _seconds(value), f"{SETTING} in {template.ref()} ({DRIFT_STEP} step env)"
    for config in objects:
        if config.kind == "ConfigMap" and config.name == ENV_CONFIGMAP:
            value = (config.body.get("data") or {}).get(SETTING)
            if value is not None:
                return _seconds(str(value)), f"{SETTING} in {config.ref()}"
    return None, f"{SETTING} (set in neither ConfigMap/{ENV_CONFIGMAP} nor the {DRIFT_STEP} step's env)"


def _seconds(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _template_of(cron: Obj) -> str | None:
    ref = (cron.spec.get("workflowSpec") or {}).get("workflowTemplateRef") or {}
    return ref.get("name") if isinstance(ref, dict) else None


def check_drift_schedules(groups: dict[Any, list[Obj]]) -> list[Problem]:
    """Per rendered kustomization: every drift CronWorkflow's longest gap equals the expected interval."""
    problems: list[Problem] = []
    for objects in groups.values():
        crons = [o for o in objects if o.kind == "CronWorkflow" and _template_of(o) == DRIFT_TEMPLATE]
        if not crons:
            continue
        expected, where = expected_interval(objects)
        for cron in crons:
            schedules = [str(s) for s in cron.spec.get("schedules") or []] or (
                [str(cron.spec["schedule"])] if cron.spec.get("schedule") else [])
            try:
                gap = longest_gap_s(schedules)
            except CronError as exc:
                problems.append(Problem.at(cron, f"schedule not understood: {exc}"))
                continue
            if expected is None:
                problems.append(Problem.at(cron, f"no expected interval for the staleness alerts: {where}"))
            elif expected != gap:
                problems.append(Problem.at(
                    cron,
                    f"runs drift checks up to {gap:g} s apart ({', '.join(schedules)}) but its runs push an "
                    f"expected interval of {expected:g} s ({where}): the staleness alerts, which fire after twice "
                    f"the expected interval, would be wrong; change one to match the other",
                ))
    return problems

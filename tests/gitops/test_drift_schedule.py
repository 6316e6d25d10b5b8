"""hack/validate links each drift CronWorkflow's schedule with the expected interval its runs push
(MLOPS_DRIFT_SCHEDULE_INTERVAL_S), which the staleness alerts compare with."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlops_gitops.manifests.discover import load
from mlops_gitops.manifests.drift_schedule import CronError, check_drift_schedules, longest_gap_s

REPO = Path(__file__).resolve().parents[2]
CRON = "workflows/manifests/models.generated.yaml"  # wine-classifier's drift check runs at minute 5
ENV = "workflows/manifests/configmap-workflow-env.yaml"


@pytest.mark.parametrize(
    ("schedules", "hours"),
    [
        (["5 * * * *"], 1),
        (["*/30 * * * *"], 0.5),
        (["0 */6 * * *"], 6),
        (["0 9-17 * * mon-fri"], 64),  # Friday 17:00 to Monday 09:00
        (["@daily"], 24),
        (["@every 90m"], 1.5),
        (["0 0 1 * *"], 31 * 24),
        (["0 0 * * *", "0 12 * * *"], 12),  # several schedules: their union
        (["0 0 1,15 * 1"], 7 * 24),  # both day fields restricted: either matches (cron's rule)
    ],
)
def test_longest_gap_between_runs(schedules: list[str], hours: float) -> None:
    assert longest_gap_s(schedules) == hours * 3600


@pytest.mark.parametrize("schedule", ["5 * * *", "61 * * * *", "* * * * * *", "@every soon", "0 0 30 2 *"])
def test_schedules_it_cannot_read_are_errors(schedule: str) -> None:
    with pytest.raises(CronError):
        longest_gap_s([schedule])


def _workflows(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "workflows" / "manifests", root / "workflows" / "manifests")
    return root


def _problems(root: Path) -> list[str]:
    loaded = load(root)
    groups: dict[object, list[object]] = {}
    for obj in loaded.objects:
        groups.setdefault(obj.source, []).append(obj)
    return [str(p) for p in check_drift_schedules(groups)]  # type: ignore[arg-type]


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_the_repository_schedules_match_the_expected_interval(tmp_path: Path) -> None:
    assert _problems(_workflows(tmp_path)) == []


def test_a_schedule_changed_alone_is_a_problem(tmp_path: Path) -> None:
    root = _workflows(tmp_path)
    _edit(root / CRON, '"5 * * * *"', '"*/30 * * * *"')
    [problem] = _problems(root)
    assert "CronWorkflow/mlops/drift-check-wine-classifier" in problem
    assert "up to 1800 s apart" in problem and "expected interval of 3600 s" in problem


def test_the_setting_changed_alone_is_a_problem_for_every_drift_schedule(tmp_path: Path) -> None:
    root = _workflows(tmp_path)
    _edit(root / ENV, 'MLOPS_DRIFT_SCHEDULE_INTERVAL_S: "3600"', 'MLOPS_DRIFT_SCHEDULE_INTERVAL_S: "7200"')
    problems = _problems(root)
    models = sorted(p.stem for p in (REPO / "workflows" / "models").glob("*.yaml"))
    assert len(problems) == len(models) and all("expected interval of 7200 s" in p for p in problems)
    assert {p.split("CronWorkflow/")[1].split(":")[0] for p in problems} == {
        f"mlops/drift-check-{model}" for model in models}


def test_a_missing_setting_is_a_problem(tmp_path: Path) -> None:
    root = _workflows(tmp_path)
    _edit(root / ENV, 'MLOPS_DRIFT_SCHEDULE_INTERVAL_S: "3600"\n', "")
    problems = _problems(root)
    assert problems and all("no expected interval for the staleness alerts" in p for p in problems)

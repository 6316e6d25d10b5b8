"""Every contract is defined once: the exit-status table, registry tag keys and alias names, the
model-name rule, the duration grammar, the prediction-log record. These tests fail when a second
definition reappears beside the one home."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from support.project import REPO

from mlops_platform.errors import (
    ConfigError,
    GateFailedError,
    InvalidInputError,
    MlopsError,
    NotFoundError,
    ServiceUnavailableError,
)
from mlops_platform.exit_status import ExitStatus

PACKAGES = sorted(p for p in REPO.glob("*/mlops_*") if (p / "__init__.py").exists())


def _sources() -> list[Path]:
    return [path for package in PACKAGES for path in sorted(package.rglob("*.py"))]


def _relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


# -- exit statuses ------------------------------------------------------------------------------


def test_every_error_class_takes_its_exit_status_from_the_table() -> None:
    """No ``exit_code = <int literal>`` and no ``EXIT_* = <int>`` outside the table."""
    found = []
    for path in _sources():
        if _relative(path) == "infra/mlops_platform/exit_status.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Constant):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.id if isinstance(t, ast.Name) else getattr(t, "attr", "") for t in targets]
                if isinstance(node.value.value, int) and any(n == "exit_code" or n.startswith("EXIT_") for n in names):
                    found.append(f"{_relative(path)}:{node.lineno}")
    assert found == []


def test_one_meaning_per_status_and_the_errors_use_theirs() -> None:
    assert len({int(s) for s in ExitStatus}) == len(ExitStatus)
    assert MlopsError.exit_code == ExitStatus.UNEXPECTED
    assert {ConfigError.exit_code, InvalidInputError.exit_code, NotFoundError.exit_code} == {ExitStatus.INVALID_INPUT}
    assert GateFailedError.exit_code == ExitStatus.GATE_REFUSED
    assert ServiceUnavailableError.exit_code == ExitStatus.SERVICE_UNAVAILABLE
    from mlops_workflows.promote.errors import PromotionConflictError

    assert PromotionConflictError.exit_code == ExitStatus.CONFLICT
    from mlops_platform.analysis.cli import EXIT_STATUS

    assert EXIT_STATUS["Inconclusive"] == ExitStatus.INCONCLUSIVE != PromotionConflictError.exit_code


def test_the_readme_table_is_the_enum() -> None:
    text = (REPO / "README.md").read_text()
    section = text[text.index("### Exit status") :]
    section = section[: section.index("\n## ")]
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", section, flags=re.MULTILINE)}
    assert documented == {int(s) for s in ExitStatus}


@pytest.mark.parametrize("status", list(ExitStatus))
def test_every_status_is_documented_on_its_member(status: ExitStatus) -> None:
    source = (REPO / "infra/mlops_platform/exit_status.py").read_text()
    assert re.search(rf"    {status.name} = {int(status)}\n    \"\"\"\S", source), status

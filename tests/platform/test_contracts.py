"""Every contract is defined once: the exit-status table, registry tag keys and alias names, the
model-name rule, the duration grammar, the prediction-log record. These tests fail when a second
definition reappears beside the one home."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
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
    from mlops_workflows.cli.analysis import EXIT_STATUS

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


# -- registry names -----------------------------------------------------------------------------


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def _tag_accesses(path: Path) -> list[tuple[int, str]]:
    """String literals used as keys of something named ``*tags*``: ``tags.get("x")``, ``tags["x"]``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        target, key = None, None
        call = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and call and node.args:
            target, key = node.func.value, node.args[0]
        elif isinstance(node, ast.Subscript):
            target, key = node.value, node.slice
        name = ast.unparse(target) if target is not None else ""
        if "tags" in name.lower() and isinstance(key, ast.Constant) and isinstance(key.value, str):
            found.append((node.lineno, key.value))
    return found


def test_registry_tag_keys_and_alias_names_are_spelled_only_in_their_module() -> None:
    import mlops_platform.registry_names as names

    values = {
        value for key, value in vars(names).items()
        if key.isupper() and isinstance(value, str) and (key.startswith(("TAG_", "RUN_TAG_")) or key == "CANDIDATE")
    }
    dotted = {v for v in values if "." in v}
    found = []
    for path in _sources():
        if _relative(path) == "infra/mlops_platform/registry_names.py":
            continue
        found += [f"{_relative(path)}:{line}: {text!r}" for line, text in _string_constants(path) if text in dotted]
        found += [f"{_relative(path)}:{line}: tags[{text!r}]" for line, text in _tag_accesses(path)]
    assert found == [], "use mlops_platform.registry_names:\n" + "\n".join(found)


def test_what_the_bot_reads_of_drift_the_drift_job_writes() -> None:
    from mlops_drift.report import DriftReport, Thresholds
    from mlops_platform import registry_names as names
    from mlops_workflows.jobs.drift.job import version_tags

    report = DriftReport(model="m", version="1", status="drift", rows=10, min_rows=5, thresholds=Thresholds(),
                         source="s", generated_at=datetime(2026, 1, 1, tzinfo=UTC), max_feature_psi=0.5)
    assert set(version_tags(report, "run")) == set(names.DRIFT_TAGS)
    bot = (REPO / "workflows/mlops_workflows/promote/bot.py").read_text()
    assert "reg.DRIFT_TAGS" in bot and '"drift.' not in bot


# -- the model-name rule, durations, the prediction-log record ----------------------------------------


def test_the_model_name_rule_is_defined_once() -> None:
    from mlops_platform.model_names import MODEL_NAME_PATTERN, SERVED_NAME_PATTERN

    found = [f"{_relative(path)}:{line}" for path in _sources()
             if _relative(path) != "infra/mlops_platform/model_names.py"
             for line, text in _string_constants(path) if text in (MODEL_NAME_PATTERN, SERVED_NAME_PATTERN)
             or "{0,61}" in text]
    assert found == []
    from mlops_workflows.training.config import TrainingConfig

    assert TrainingConfig.model_fields["model_name"].metadata[0].pattern == MODEL_NAME_PATTERN


def test_the_duration_grammar_is_defined_once() -> None:
    found = []
    for path in _sources():
        if _relative(path) == "infra/mlops_platform/durations.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef) and re.fullmatch(r"_?parse_\w*duration", node.name):
                found.append(f"{_relative(path)}:{node.lineno}: def {node.name}")
        found += [f"{_relative(path)}:{line}: {text!r}" for line, text in _string_constants(path)
                  if re.search(r"\(?\?:?ns\|us|\bms\|s\|m\|h", text)]
    assert found == []


def test_the_prediction_log_layout_is_spelled_only_in_its_module() -> None:
    from mlops_platform import prediction_log

    found = [f"{_relative(path)}:{line}: {text!r}" for path in _sources()
             if _relative(path) != "infra/mlops_platform/prediction_log.py"
             for line, text in _string_constants(path)
             if text == prediction_log.FEATURE_PREFIX
             or text.startswith(("date=", "hour=", "model=", "version="))]
    assert found == []

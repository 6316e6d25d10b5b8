"""Lint (ruff) and type checks (mypy --strict) are part of the test suite."""

from __future__ import annotations

import subprocess
import sys

from support.project import REPO

PACKAGES = [
    str(path.relative_to(REPO))
    for path in sorted(REPO.glob("*/mlops_*"))
    if path.is_dir() and (path / "__init__.py").exists()
]


def test_ruff() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy() -> None:
    assert "infra/mlops_platform" in PACKAGES and "workflows/mlops_workflows" in PACKAGES
    result = subprocess.run(
        [sys.executable, "-m", "mypy", *PACKAGES], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shell_scripts_parse() -> None:
    scripts = [*REPO.glob("hack/**/*.sh"), REPO / ".ci" / "run", *REPO.glob("hack/validate")]
    for script in scripts:
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script}: {result.stderr}"

"""The hack/ scripts parse (bash -n) and pass shellcheck when it is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from support.gitops import REPO

SCRIPTS = [*sorted(p for p in (REPO / "hack").rglob("*.sh")), REPO / "hack" / "validate", REPO / ".ci" / "run"]
PLATFORM_SCRIPTS = ["kind-up.sh", "kind-down.sh", "kind-smoke.sh", "create-dev-secrets.sh", "build-images.sh",
                    "build-standin-base.sh"]


@pytest.mark.parametrize("script", SCRIPTS, ids=[str(p.relative_to(REPO)) for p in SCRIPTS])
def test_bash_syntax(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=[str(p.relative_to(REPO)) for p in SCRIPTS])
def test_shellcheck(script: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    result = subprocess.run([shellcheck, "-x", str(script)], capture_output=True, text=True,
                            check=False, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", PLATFORM_SCRIPTS)
def test_platform_scripts_are_strict_executable_and_print_usage(name: str) -> None:
    script = REPO / "hack" / name
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -o errexit -o nounset -o pipefail" in text or "set -euo pipefail" in text
    assert script.stat().st_mode & 0o111, f"{name} is not executable"
    result = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, check=False,
                            timeout=30)
    assert result.returncode == 0 and "usage" in result.stdout.lower(), result.stdout + result.stderr

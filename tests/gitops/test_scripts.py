"""The hack/ scripts people run: strict, executable, with usage; hack/verify-all.sh runs the checks it is
asked for. (That every script parses and passes shellcheck is hack/verify-shellcheck.sh.)"""

from __future__ import annotations

import subprocess

import pytest
from support.gitops import REPO

PLATFORM_SCRIPTS = ["kind-up.sh", "kind-down.sh", "kind-smoke.sh", "create-dev-secrets.sh", "build-images.sh",
                    "build-standin-base.sh"]


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


def test_verify_all_refuses_an_unknown_check() -> None:
    result = subprocess.run(["bash", str(REPO / "hack" / "verify-all.sh"), "ruff", "no-such-check"],
                            capture_output=True, text=True, check=False, timeout=30)
    assert result.returncode == 2
    assert "hack/verify-no-such-check.sh" in result.stderr and "==>" not in result.stderr


def test_every_verify_script_is_listed_by_verify_all() -> None:
    result = subprocess.run(["bash", str(REPO / "hack" / "verify-all.sh"), "--help"], capture_output=True,
                            text=True, check=False, timeout=30)
    assert result.returncode == 0, result.stderr
    listed = {line.strip() for line in result.stdout.splitlines()[4:]}
    scripts = {p.stem.removeprefix("verify-") for p in (REPO / "hack").glob("verify-*.sh")} - {"all"}
    assert listed == scripts and {"ruff", "mypy", "shellcheck", "manifests", "promtool"} <= scripts

"""The one list of environments: what it accepts, and that the registry's aliases come from it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlops_platform import environments
from mlops_platform import registry_names as registry
from mlops_platform.errors import ConfigError


def test_list_is_read_in_promotion_order() -> None:
    assert environments.parse("environments: [staging, qa, production]\n") == ("staging", "qa", "production")


@pytest.mark.parametrize(("text", "message"), [
    ("environments: []\n", "non-empty list"),
    ("environments: [staging, staging]\n", "listed twice"),
    ("environments: [staging, none]\n", "'none' is reserved"),
    ("environments: [Staging]\n", "not a lowercase DNS label"),
    ("environments: [a.b]\n", "not a lowercase DNS label"),
    ("[staging\n", "not YAML"),
])
def test_bad_lists_are_refused_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        environments.parse(text, "environments.yaml")


def test_registry_aliases_are_the_listed_environments() -> None:
    listed = environments.names()
    assert listed == registry.ENVIRONMENTS
    assert (registry.CANDIDATE, *listed) == registry.ALIASES
    assert (listed[0], listed[-1]) == (registry.STAGING, registry.PRODUCTION)


def test_shell_scripts_read_the_list_one_a_line() -> None:
    result = subprocess.run([sys.executable, "-m", "mlops_platform.environments"], capture_output=True, text=True,
                            check=True, timeout=60)
    assert tuple(result.stdout.split()) == environments.names()

"""The platform's environments, read from ``environments.yaml`` beside this module (shipped in the
package): their names in promotion order, and the names that follow from an environment's name.

The YAML file is the one list of environments; the registry's alias names, the promotion order,
the CLI's choices, hack/create-dev-secrets.sh (``python -m mlops_platform.environments``) and the
manifest validator's completeness check all read it through this module.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from mlops_platform.errors import ConfigError

LIST_FILE = "environments.yaml"
RESERVED = frozenset({"candidate", "none"})
"""``candidate`` is a registry alias that is no environment; ``none`` means "do not promote"."""
_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$")


def parse(text: str, where: str = LIST_FILE) -> tuple[str, ...]:
    """The environment names of a list file's text; ConfigError naming the problem otherwise."""
    import yaml  # here, not at import: the CLI's parser imports this module (see LISTED)

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not YAML: {exc}") from exc
    names = document.get("environments") if isinstance(document, dict) else None
    if not isinstance(names, list) or not names:
        raise ConfigError(f"{where}: expected a non-empty list under 'environments'")
    for name in names:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{where}: environment {name!r} is not a lowercase DNS label")
        if name in RESERVED:
            raise ConfigError(f"{where}: {name!r} is reserved ({', '.join(sorted(RESERVED))})")
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: an environment is listed twice")
    return tuple(names)


@cache
def names() -> tuple[str, ...]:
    """The environments, in promotion order."""
    return parse(resources.files(__package__).joinpath(LIST_FILE).read_text(encoding="utf-8"))


class _Listed(Sequence[str]):
    """The environments, read on first use: the CLI's ``--env`` choices, so that building its parser
    (``mlops --help``, any other command) reads no YAML."""

    def __getitem__(self, index: Any) -> Any:
        return names()[index]

    def __len__(self) -> int:
        return len(names())

    def __repr__(self) -> str:
        return repr(names())


LISTED: Sequence[str] = _Listed()
""":func:`names`, as a sequence that reads the list when first used."""


def namespace(env: str) -> str:
    """The Kubernetes namespace of an environment's model servers."""
    return f"models-{env}"


def bucket(env: str) -> str:
    """The object-store bucket of an environment (prediction logs, batch data)."""
    return f"mlops-{env}"


def host_suffix(env: str) -> str:
    """The DNS suffix of an environment's model hosts: ``<model>.<suffix>``."""
    return f"{env}.mlops.local"


def main() -> int:
    """Print the environments, one a line, in promotion order (for shell scripts)."""
    try:
        print("\n".join(names()))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())

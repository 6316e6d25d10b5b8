"""What several commands' argument parsing and handlers share (no command of its own)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_platform.registry import Registry
    from mlops_workflows.promote.bot import Bot


def model_version_args(parser: argparse.ArgumentParser) -> None:
    """MODEL and one of --version/--alias (`batch-predict`, `drift`)."""
    parser.add_argument("model", metavar="MODEL", help="registered model name")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", type=int, help="model version number")
    which.add_argument("--alias", help="model alias, e.g. production")


def registry() -> Registry:
    """The model registry of the configured tracking server, checked reachable (exit 4 otherwise)."""
    from mlops_platform.registry import open_registry
    from mlops_platform.settings import PlatformSettings, load_settings

    found = open_registry(load_settings(PlatformSettings))
    found.check_reachable()
    return found


def bot() -> Bot:
    """The promotion bot (`promote`, `rollback`, `models history`); the registry is reached on first use."""
    from mlops_platform.settings import load_settings
    from mlops_workflows.promote.bot import Bot
    from mlops_workflows.promote.settings import PromotionSettings

    settings = load_settings(PromotionSettings)

    def registry_factory() -> Any:
        from mlops_platform.registry import open_registry

        found = open_registry(settings)
        found.check_reachable()
        return found

    return Bot(settings, registry_factory=registry_factory)

"""``mlops config``: print the effective settings (secrets masked)."""

from __future__ import annotations

import argparse
from typing import Any


def _cmd_config(args: argparse.Namespace) -> int:
    from mlops_platform.settings import PlatformSettings, load_settings

    settings = load_settings(PlatformSettings)
    shown = settings.describe()
    width = max(len(k) for k in shown)
    for key, value in shown.items():
        print(f"{key:<{width}}  {value}")
    return 0


def add_parser(commands: Any) -> None:
    config = commands.add_parser("config", help="print the effective settings (secrets masked)")
    config.set_defaults(handler=_cmd_config)

"""``mlops rollout status``: each local Rollout's steps, weights and analysis, from the state file of
``mlops lifecycle`` (:mod:`mlops_local.state`; the local mode's package, not in the images)."""

from __future__ import annotations

import argparse
from typing import Any


def _cmd_rollout_status(args: argparse.Namespace) -> int:
    import time

    from mlops_local.settings import LocalSettings
    from mlops_local.state import format_state, load
    from mlops_platform.settings import load_settings

    path = load_settings(LocalSettings).state_file
    while True:
        text = format_state(load(path), args.name)
        if not args.watch:
            print(text)
            return 0
        print("\033[2J\033[H" + time.strftime("%H:%M:%S ") + str(path) + "\n\n" + text, flush=True)
        try:
            time.sleep(args.interval)
        except KeyboardInterrupt:
            return 0


def add_parser(commands: Any) -> None:
    rollout = commands.add_parser("rollout", help="the local rollout runner's state")
    sub = rollout.add_subparsers(dest="rollout_command", required=True, metavar="SUBCOMMAND")
    status = sub.add_parser("status", help="each Rollout's steps, weights, measured shares and analysis "
                            "(the state file of `mlops lifecycle`)")
    status.add_argument("name", nargs="?", help="a Rollout (NAMESPACE/NAME or NAME); default: all")
    status.add_argument("--watch", action="store_true", help="redraw until Ctrl-C")
    status.add_argument("--interval", type=float, default=1.0, help="seconds between redraws (default 1)")
    status.set_defaults(handler=_cmd_rollout_status)

"""``mlops lifecycle`` and ``mlops rollout status``: argparse wiring, heavy imports inside handlers."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _cmd_lifecycle(args: argparse.Namespace) -> int:
    from mlops_local.lifecycle import Lifecycle, Scenario
    from mlops_local.settings import LocalSettings
    from mlops_platform.settings import load_settings

    settings = load_settings(LocalSettings)
    repo = Path(args.repo).resolve()
    scenario = Scenario(config=Path(args.config).resolve())
    if args.retrain_set:
        scenario.retrain_sets = list(args.retrain_set)
    if args.faulty_set:
        scenario.faulty_sets = list(args.faulty_set)
    return Lifecycle(settings, repo, scenario).run()


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


def add_commands(commands: Any) -> None:
    lifecycle = commands.add_parser(
        "lifecycle",
        help="the whole lifecycle on this machine: promotion pull requests, canaries through Envoy, analysis, "
        "abort and revert, batch, drift and alerts",
        description="Start MLflow, Prometheus, Pushgateway, Alertmanager, Envoy, a Git server and a pull-request "
        "host on loopback; train, promote through pull requests, run each canary of the rendered Rollouts with "
        "real Envoy weights and Prometheus analysis (durations scaled by MLOPS_LOCAL_TIME_SCALE), abort a faulty "
        "version and open its revert, score a batch, detect drift and fire the alert; print a summary. Stops "
        "everything it started on exit, failure or Ctrl-C. Starts clean in MLOPS_LOCAL_HOME each time.",
        epilog="Exit status: 0 the lifecycle ran and its checks held, 1 a check failed, 2 a binary is missing, "
        "130 interrupted.",
    )
    lifecycle.add_argument("--config", default="workflows/models/wine-classifier.yaml", metavar="FILE",
                           help="training config of the model (default: %(default)s)")
    lifecycle.add_argument("--repo", default=".", help="the checkout whose HEAD becomes origin (default: .)")
    lifecycle.add_argument("--retrain-set", action="append", metavar="KEY=VALUE",
                           help="--set of the second version (repeatable; default: 300 trees of depth 4)")
    lifecycle.add_argument("--faulty-set", action="append", metavar="KEY=VALUE",
                           help="--set of the faulty third version (repeatable; default: a one-split stump with a "
                           "loosened gate)")
    lifecycle.set_defaults(handler=_cmd_lifecycle)

    rollout = commands.add_parser("rollout", help="the local rollout runner's state")
    sub = rollout.add_subparsers(dest="rollout_command", required=True, metavar="SUBCOMMAND")
    status = sub.add_parser("status", help="each Rollout's steps, weights, measured shares and analysis "
                            "(the state file of `mlops lifecycle`)")
    status.add_argument("name", nargs="?", help="a Rollout (NAMESPACE/NAME or NAME); default: all")
    status.add_argument("--watch", action="store_true", help="redraw until Ctrl-C")
    status.add_argument("--interval", type=float, default=1.0, help="seconds between redraws (default 1)")
    status.set_defaults(handler=_cmd_rollout_status)


__all__ = ["add_commands"]

"""``mlops lifecycle``: the whole lifecycle on this machine (:mod:`mlops_local.lifecycle`).

The local mode's package (``mlops_local``, extra ``local``) is imported by the handler only; the jobs image
does not install it."""

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


def add_parser(commands: Any) -> None:
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

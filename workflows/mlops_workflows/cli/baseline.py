"""``mlops baseline create``: attach baseline statistics to a version registered without them
(:mod:`mlops_workflows.baseline`)."""

from __future__ import annotations

import argparse
from typing import Any


def _cmd_baseline_create(args: argparse.Namespace) -> int:
    from mlops_platform.registry import open_registry
    from mlops_platform.settings import PlatformSettings, load_settings
    from mlops_workflows.baseline import create_baseline

    settings = load_settings(PlatformSettings)
    registry = open_registry(settings)
    registry.check_reachable()
    created = create_baseline(registry, settings, args.model, args.version, args.data, bins=args.bins,
                              replace=args.replace)
    print(
        f"{created.model} v{created.version}: baseline statistics {'replaced' if created.replaced else 'attached'} "
        f"({created.rows:,} rows, {len(created.features)} features"
        + (f", classes {', '.join(created.classes)}" if created.classes else ", no classes: no prediction drift")
        + ")"
    )
    print(f"  {created.uri}")
    print("  the model server reads them when it (re)loads the version; the drift job from its next run")
    return 0


def add_parser(commands: Any) -> None:
    baseline = commands.add_parser("baseline", help="baseline statistics of model versions (what drift compares with)")
    baseline_sub = baseline.add_subparsers(dest="baseline_command", required=True, metavar="SUBCOMMAND")
    create = baseline_sub.add_parser(
        "create",
        help="compute baseline statistics from a data file and attach them to a version registered without",
        description="Compute the statistics training stores (feature quantile bins; class shares of the model's "
        "predictions) from FILE and attach them to the version, so the drift job can check it.",
    )
    create.add_argument("model", metavar="MODEL", help="registered model name")
    create.add_argument("--version", type=int, required=True, help="model version number")
    create.add_argument("--data", required=True, metavar="FILE",
                        help="CSV or Parquet file (local or s3://) of training-like rows")
    create.add_argument("--bins", type=int, help="quantile bins per feature (default: training's default, 10)")
    create.add_argument("--replace", action="store_true", help="overwrite statistics the version already has")
    create.set_defaults(handler=_cmd_baseline_create)

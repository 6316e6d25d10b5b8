"""``mlops drift``: compare recent predictions (or a file) with a model version's training baseline
(:mod:`mlops_workflows.jobs.drift.job`).

Heavy imports (pyarrow, scipy, MLflow) happen inside the handler, so `mlops --help` stays fast.

Exit status (beyond the CLI's 0-4): 10 drift detected, 11 insufficient data; see :mod:`mlops_workflows.jobs.drift.job`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from mlops_platform.errors import InvalidInputError
from mlops_workflows.cli._shared import model_version_args


def _timestamp(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r} (e.g. 2024-06-01T12:00Z)") from None


def _cmd_drift(args: argparse.Namespace) -> int:
    from mlops_platform.settings import load_settings
    from mlops_workflows.jobs.drift.job import DriftRequest, run_drift
    from mlops_workflows.jobs.drift.settings import DriftSettings

    if args.input and (args.since or args.until or args.last):
        raise InvalidInputError("--input replaces the prediction-log window: drop --since/--until/--last")
    if args.last and args.since:
        raise InvalidInputError("give either --last or --since, not both")
    settings = load_settings(DriftSettings)
    request = DriftRequest(
        model=args.model,
        version=args.version,
        alias=args.alias,
        since=args.since,
        until=args.until,
        last=args.last,
        input_uri=args.input,
        report_dir=args.report_dir,
        psi_warn=args.psi_warn,
        psi_alert=args.psi_alert,
        min_rows=args.min_rows,
    )
    outcome = run_drift(settings, request)
    _print_drift(outcome)
    return outcome.exit_code


def _print_drift(outcome: Any) -> None:
    report = outcome.report
    print(
        f"{report.model} v{report.version}: {report.status.replace('_', ' ').upper()}  "
        f"({report.rows:,} rows; PSI warn {report.thresholds.psi_warn:g}, alert {report.thresholds.psi_alert:g})"
    )
    for note in report.notes:
        print(f"  {note}")
    for feature in sorted(report.features, key=lambda f: -(f.psi or 0.0)):
        psi = f"{feature.psi:.4f}" if feature.psi is not None else "-"
        ks = f"{feature.ks_statistic:.3f}" if feature.ks_statistic is not None else "-"
        print(f"  {feature.name:<32} PSI {psi:>8}  KS {ks:>6}  {feature.status}")
    if report.prediction is not None and report.prediction.psi is not None:
        print(f"  {'(predicted class)':<32} PSI {report.prediction.psi:>8.4f}  {report.prediction.status}")
    for item in report.files_skipped:
        print(f"  skipped: {item}", file=sys.stderr)
    for uri in outcome.report_uris:
        print(f"  report: {uri}")
    if outcome.run_url:
        print(f"  run:    {outcome.run_url}")


def add_parser(commands: Any) -> None:
    drift = commands.add_parser(
        "drift",
        help="compare recent predictions (or a file) with a model version's training baseline",
        description="Exit status: 0 no drift, 10 drift detected, 11 insufficient data "
        "(2 invalid input, 4 service unavailable).",
    )
    model_version_args(drift)
    data = drift.add_argument_group("data (default: the prediction log of the last MLOPS_DRIFT_WINDOW)")
    data.add_argument("--last", metavar="DURATION", help="window ending now, e.g. 1h, 30m, 1d")
    data.add_argument("--since", type=_timestamp, metavar="TIME", help="window start, ISO 8601 (UTC if no zone)")
    data.add_argument("--until", type=_timestamp, metavar="TIME", help="window end (exclusive; default now)")
    data.add_argument("--input", metavar="URI", help="compare a CSV/Parquet file or folder instead of the log")
    drift.add_argument("--report-dir", metavar="URI", help="also write the JSON and HTML reports here")
    drift.add_argument("--psi-warn", type=float, help="PSI warn threshold (default MLOPS_DRIFT_PSI_WARN, 0.1)")
    drift.add_argument("--psi-alert", type=float, help="PSI alert threshold (default MLOPS_DRIFT_PSI_ALERT, 0.25)")
    drift.add_argument("--min-rows", type=int, help="fewest rows to compare (default MLOPS_DRIFT_MIN_ROWS)")
    drift.set_defaults(handler=_cmd_drift)

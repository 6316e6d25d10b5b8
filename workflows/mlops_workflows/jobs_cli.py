"""The `mlops batch-predict`, `mlops drift` and `mlops baseline create` subcommands (hooked into
`mlops_workflows.cli`).

Heavy imports (pyarrow, scipy, MLflow) happen inside the handlers, so `mlops --help` stays fast.

Exit status of `mlops drift` (beyond the CLI's 0-4): 10 drift detected, 11 insufficient data;
see :mod:`mlops_workflows.jobs.drift.job`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from mlops_platform.errors import InvalidInputError


def _model_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="registered model name")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", type=int, help="model version number")
    which.add_argument("--alias", help="model alias, e.g. production")


def _timestamp(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r} (e.g. 2024-06-01T12:00Z)") from None


def _cmd_batch_predict(args: argparse.Namespace) -> int:
    from mlops_platform.settings import load_settings
    from mlops_platform.tables import Shard
    from mlops_workflows.jobs.batch.job import BatchRequest, run_batch
    from mlops_workflows.jobs.batch.settings import BatchSettings

    settings = load_settings(BatchSettings)
    request = BatchRequest(
        model=args.model,
        version=args.version,
        alias=args.alias,
        input_uri=args.input,
        output_uri=args.output,
        id_column=args.id_column,
        shard=Shard.parse(args.shard) if args.shard else Shard(1, 1),
        invalid_rows=args.invalid_rows,
        overwrite=args.overwrite,
        chunk_rows=args.chunk_rows,
    )
    result = run_batch(settings, request)
    rate = result.rows_read / result.duration_s if result.duration_s else 0.0
    print(
        f"{result.model} v{result.version} shard {result.shard}: {result.rows_read:,} rows read, "
        f"{result.rows_predicted:,} predicted, {result.rows_rejected:,} rejected "
        f"in {result.duration_s:.1f}s ({rate:,.0f} rows/s)"
    )
    print(f"  output:  {result.output_uri}")
    if result.rejects_uri:
        print(f"  rejects: {result.rejects_uri}")
        for reason in result.first_reject_reasons:
            print(f"    - {reason}")
    print(f"  input:   {result.units} unit(s) of {result.files} file(s), digest {result.input_digest}")
    if result.run_url:
        print(f"  run:     {result.run_url}")
    return 0


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


def _cmd_baseline_create(args: argparse.Namespace) -> int:
    from mlops_platform.registry import Registry
    from mlops_platform.settings import PlatformSettings, load_settings
    from mlops_workflows.baseline_cmd import create_baseline

    settings = load_settings(PlatformSettings)
    registry = Registry(settings)
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


def add_commands(commands: Any) -> None:
    """Add `batch-predict`, `drift` and `baseline create` to the CLI's subparsers."""
    batch = commands.add_parser(
        "batch-predict",
        help="score a CSV/Parquet file or folder (local or s3://) with a model version",
        description="Score an input with a registered model version; the output is committed only when complete.",
    )
    _model_version(batch)
    batch.add_argument("--input", required=True, metavar="URI", help="a CSV/Parquet file or a folder/prefix of them")
    batch.add_argument("--output", required=True, metavar="URI",
                       help="output folder or s3:// prefix; this run writes part-<i>-of-<n>.parquet in it")
    batch.add_argument("--id-column", metavar="COLUMN", help="input column copied to the output (e.g. a row key)")
    batch.add_argument("--shard", metavar="I/N", help="score only shard I of N (1-based), e.g. 2/4")
    batch.add_argument("--invalid-rows", choices=("reject", "fail"),
                       help="rows not matching the signature: write them to a rejects file (default; "
                       "MLOPS_BATCH_INVALID_ROWS) or fail the job")
    batch.add_argument("--overwrite", action="store_true", help="replace this shard's existing output")
    batch.add_argument("--chunk-rows", type=int, metavar="N", help="rows per chunk (default MLOPS_BATCH_CHUNK_ROWS)")
    batch.set_defaults(handler=_cmd_batch_predict)

    drift = commands.add_parser(
        "drift",
        help="compare recent predictions (or a file) with a model version's training baseline",
        description="Exit status: 0 no drift, 10 drift detected, 11 insufficient data "
        "(2 invalid input, 4 service unavailable).",
    )
    _model_version(drift)
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

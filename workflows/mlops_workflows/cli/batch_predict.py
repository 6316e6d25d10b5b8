"""``mlops batch-predict``: score a CSV/Parquet input with a model version (:mod:`mlops_workflows.jobs.batch.job`).

Heavy imports (pyarrow, MLflow) happen inside the handler, so `mlops --help` stays fast.
"""

from __future__ import annotations

import argparse
from typing import Any

from mlops_workflows.cli._shared import model_version_args


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


def add_parser(commands: Any) -> None:
    batch = commands.add_parser(
        "batch-predict",
        help="score a CSV/Parquet file or folder (local or s3://) with a model version",
        description="Score an input with a registered model version; the output is committed only when complete.",
    )
    model_version_args(batch)
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

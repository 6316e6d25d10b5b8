"""``mlops workflow``: Argo Workflows from the command line, and the small steps the templates need.

- ``mlops workflow submit TEMPLATE -p key=value ...``: submit a WorkflowTemplate through the Argo
  Server API (``mlops_workflows.argo``); prints the new workflow's name.
- ``mlops workflow status NAME``: phase, progress and steps of a workflow.
- ``mlops workflow shards --input URI --shards N``: list the input of a batch run and print the
  JSON list of shards (``["1/4", "2/4", ...]``) the batch-inference template fans out over
  (``withParam``); fewer shards than asked when the input has fewer units to split.
- ``mlops workflow batch-summary --output URI``: check that every shard of a batch run committed
  its output and print files and rows per shard.
- ``mlops workflow expect-exit CODE --allowed 0,10,11``: succeed when a previous step's exit code
  is one of the allowed outcomes, fail with that code otherwise (the drift-check template).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from mlops_platform.errors import InvalidInputError


def _cmd_submit(args: argparse.Namespace) -> int:
    from mlops_platform.settings import load_settings
    from mlops_workflows.argo import ArgoClient, ArgoSettings, SubmitRequest, parse_pairs

    request = SubmitRequest(
        template=args.template,
        parameters=parse_pairs(args.parameter, "-p"),
        labels=parse_pairs(args.label, "--label"),
        generate_name=args.generate_name,
    )
    settings = load_settings(ArgoSettings)
    with ArgoClient(settings) as client:
        workflow = client.submit(request)
    meta = workflow.get("metadata") or {}
    print(meta.get("name", ""))
    if args.verbose_output:
        print(f"submitted {request.template} as {meta.get('name')} in {meta.get('namespace', settings.namespace)}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from mlops_platform.settings import load_settings
    from mlops_workflows.argo import ArgoClient, ArgoSettings, describe

    with ArgoClient(load_settings(ArgoSettings)) as client:
        workflow = client.get(args.name)
    if args.json:
        print(json.dumps({"metadata": workflow.get("metadata", {}), "status": workflow.get("status", {})}, indent=2))
    else:
        print(describe(workflow))
    return 0


def _cmd_shards(args: argparse.Namespace) -> int:
    from mlops_platform.settings import PlatformSettings, load_settings
    from mlops_platform.tables import list_inputs, plan_units
    from mlops_workflows.shards import plan_shards

    settings = load_settings(PlatformSettings)
    fs, files = list_inputs(args.input, settings)
    if not files:
        raise InvalidInputError(f"{args.input}: no CSV or Parquet file to score")
    units = plan_units(fs, files)
    print(json.dumps(plan_shards(len(units), args.shards)))
    return 0


def _cmd_batch_summary(args: argparse.Namespace) -> int:
    from mlops_platform.settings import PlatformSettings, load_settings
    from mlops_platform.storage import list_uris
    from mlops_workflows.jobs.batch.output import rejects_folder
    from mlops_workflows.shards import PART, REJECTS, rows_per_file, summarize_parts

    settings = load_settings(PlatformSettings)

    # the parts are in the output folder, the rejects beside it (<output>.rejects)
    uris = list_uris(args.output, settings) + list_uris(rejects_folder(args.output), settings)
    count, done, problems = summarize_parts(uris)
    if args.shards is not None and count and count != args.shards:
        problems.append(f"expected {args.shards} shards, the output has {count}")
    rows = rows_per_file(uris, settings)
    print(f"output {args.output}: {len(done)} of {count} shards committed")
    for uri in uris:
        if PART.search(uri) or REJECTS.search(uri):
            print(f"  {uri.rsplit('/', 1)[-1]:<40} {rows.get(uri, '?'):>10} rows")
    total = sum(v for k, v in rows.items() if PART.search(k) and isinstance(v, int))
    rejected = sum(v for k, v in rows.items() if REJECTS.search(k) and isinstance(v, int))
    print(f"  total: {total} rows predicted, {rejected} rows rejected")
    if problems:
        raise InvalidInputError(f"{args.output}: " + "; ".join(problems))
    return 0


def _cmd_expect_exit(args: argparse.Namespace) -> int:
    allowed = _codes(args.allowed)
    try:
        code = int(str(args.code).strip())
    except ValueError:
        print(f"error: {args.code!r} is not an exit code (did the step run?)")
        return 1
    if code in allowed:
        print(f"exit code {code}: an expected outcome ({', '.join(map(str, sorted(allowed)))})")
        return 0
    print(f"error: exit code {code} is not one of the expected outcomes {sorted(allowed)}")
    return code if 0 < code < 256 else 1


def _codes(text: str) -> set[int]:
    try:
        return {int(part) for part in text.split(",") if part.strip()}
    except ValueError:
        raise InvalidInputError(f"--allowed {text!r}: expected comma-separated integers") from None


def add_parser(commands: Any) -> None:
    workflow = commands.add_parser(
        "workflow",
        help="submit and inspect Argo Workflows; helpers of the workflow templates",
        description="Argo Workflows through the Argo Server API. Settings: MLOPS_ARGO_SERVER_URL, "
        "MLOPS_ARGO_NAMESPACE (default mlops), ARGO_TOKEN or MLOPS_ARGO_TOKEN_FILE.",
    )
    sub = workflow.add_subparsers(dest="workflow_command", required=True, metavar="SUBCOMMAND")

    submit = sub.add_parser("submit", help="submit a WorkflowTemplate; prints the workflow's name")
    submit.add_argument("template", help="WorkflowTemplate name: train, batch-inference, drift-check")
    submit.add_argument("-p", "--parameter", action="append", default=[], metavar="KEY=VALUE",
                        help="workflow parameter (repeatable)")
    submit.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE",
                        help="extra label on the workflow (repeatable)")
    submit.add_argument("--generate-name", metavar="PREFIX", help="name prefix (default: the template's name)")
    submit.add_argument("--verbose-output", action="store_true", help=argparse.SUPPRESS)
    submit.set_defaults(handler=_cmd_submit)

    status = sub.add_parser("status", help="phase, progress and steps of a workflow")
    status.add_argument("name", help="workflow name (as printed by submit)")
    status.add_argument("--json", action="store_true", help="print metadata and status as JSON")
    status.set_defaults(handler=_cmd_status)

    shards = sub.add_parser("shards", help="list a batch input and print its shards as a JSON list")
    shards.add_argument("--input", required=True, metavar="URI", help="CSV/Parquet file, folder or s3:// prefix")
    shards.add_argument("--shards", required=True, type=int, metavar="N", help="shards wanted (1-256)")
    shards.set_defaults(handler=_cmd_shards)

    summary = sub.add_parser("batch-summary", help="check a batch run's output and count its rows")
    summary.add_argument("--output", required=True, metavar="URI", help="the batch run's output folder or prefix")
    summary.add_argument("--shards", type=int, metavar="N", help="expected number of shards")
    summary.set_defaults(handler=_cmd_batch_summary)

    expect = sub.add_parser("expect-exit", help="succeed when an exit code is an expected outcome")
    expect.add_argument("code", help="the exit code of the step before")
    expect.add_argument("--allowed", required=True, metavar="CODES", help="comma-separated expected codes")
    expect.set_defaults(handler=_cmd_expect_exit)

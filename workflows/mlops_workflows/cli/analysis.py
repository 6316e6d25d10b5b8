"""``mlops analysis run|replay``.

``run`` evaluates AnalysisTemplates against a Prometheus URL with the repository tooling
(:mod:`mlops_gitops.analysis`, not installed in the images). Exit status
(:class:`mlops_platform.exit_status.ExitStatus`): 0 Successful; 3 Failed; 6 Inconclusive; 4 Error
(Prometheus unreachable, or measurements that could not be evaluated); 2 invalid templates or args.

``replay`` is a staging analysis Job of the jobs image (:mod:`mlops_workflows.replay`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mlops_platform.errors import ConfigError
from mlops_platform.exit_status import ExitStatus

EXIT_STATUS: dict[str, ExitStatus] = {
    "Successful": ExitStatus.OK,
    "Failed": ExitStatus.GATE_REFUSED,
    "Error": ExitStatus.SERVICE_UNAVAILABLE,
    "Inconclusive": ExitStatus.INCONCLUSIVE,
}


def _arg(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _cmd_analysis_run(args: argparse.Namespace) -> int:
    import json

    from mlops_gitops.analysis.runner import (
        Measurement,
        Metric,
        load_templates,
        resolve_metrics,
        run_analysis,
    )

    paths: list[Path] = []
    for path in args.files:
        paths += sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    templates = load_templates(paths, args.template)
    metrics = resolve_metrics(templates, dict(args.arg), args.prometheus)

    def show(metric: Metric, measurement: Measurement) -> None:
        if not args.json:
            detail = f"  {measurement.message}" if measurement.message else ""
            print(f"  {metric.name:<28} {measurement.phase:<13} {measurement.value}{detail}", flush=True)

    result = run_analysis(metrics, terminate_on_failure=not args.no_terminate, on_measurement=show)
    if args.json:
        payload: dict[str, Any] = result.to_dict()
        print(json.dumps(payload, indent=2))
    else:
        for metric_result in result.metrics:
            print(f"{metric_result.name:<30} {metric_result.phase:<13} {metric_result.message}")
        print(f"analysis: {result.phase}")
    return EXIT_STATUS.get(result.phase, ExitStatus.UNEXPECTED)


def _cmd_analysis_replay(args: argparse.Namespace) -> int:
    from mlops_platform.settings import AnalysisSettings, load_settings
    from mlops_workflows.replay import replay

    settings = load_settings(AnalysisSettings)
    key = settings.api_key.get_secret_value() if settings.api_key is not None else None
    result = replay(settings, args.model, args.version, args.canary, args.stable, api_key=key, batch=args.batch)
    print(f"{result.model} v{result.version}: {result.canary.rows} labelled holdout rows replayed")
    for ok, message in result.checks:
        print(f"  [{'ok' if ok else 'FAIL'}] {message}")
    print(f"replay: {'Successful' if result.passed else 'Failed'}")
    return 0 if result.passed else EXIT_STATUS["Failed"]


def add_parser(commands: Any) -> None:
    analysis = commands.add_parser("analysis", help="run Argo Rollouts AnalysisTemplates locally")
    sub = analysis.add_subparsers(dest="analysis_command", required=True, metavar="SUBCOMMAND")
    run = sub.add_parser(
        "run",
        help="measure a template's metrics against Prometheus, with Argo Rollouts' semantics",
        description="Resolve the templates' args, measure every metric `count` times every `interval` "
        "and assess it as Argo Rollouts does (failureLimit, inconclusiveLimit, consecutiveErrorLimit).",
        epilog="Exit status: 0 Successful, 3 Failed, 6 Inconclusive, 4 Error, 2 invalid input. Example: "
        "mlops analysis run serving/manifests/base --template model-success-rate "
        "--prometheus http://localhost:9090 --arg namespace=models-staging --arg model=wine-classifier ...",
    )
    run.add_argument("files", nargs="+", type=Path, metavar="PATH",
                     help="YAML files (or folders of them) holding AnalysisTemplates")
    run.add_argument("--template", action="append", default=[], metavar="NAME",
                     help="template to run (repeatable; default: every template found), merged as in a Rollout step")
    run.add_argument("--arg", action="append", default=[], type=_arg, metavar="NAME=VALUE",
                     help="value of a template arg (repeatable); args without a default are required")
    run.add_argument("--prometheus", metavar="URL", help="Prometheus base URL (default: each metric's address)")
    run.add_argument("--no-terminate", action="store_true",
                     help="measure every metric to its own end instead of stopping all at the first "
                     "Failed/Error/Inconclusive metric")
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.set_defaults(handler=_cmd_analysis_run)

    replay = sub.add_parser(
        "replay",
        help="replay a version's labelled holdout rows through the canary (and stable) and check accuracy",
        description="A staging analysis Job: send the canary version's labelled holdout rows (stored at "
        "training) to the canary Service, compute its accuracy on the labels, and fail when it is below the "
        "version's gate.min.accuracy or worse than the stable track's by more than gate.tolerance.accuracy. "
        "API key: MLOPS_ANALYSIS_API_KEY.",
        epilog="Exit status: 0 passed, 3 failed, 2 invalid input, 4 a service unreachable.",
    )
    replay.add_argument("model", metavar="MODEL", help="registered model name")
    replay.add_argument("--version", type=int, required=True, help="the canary's version")
    replay.add_argument("--canary", required=True, metavar="URL", help="base URL of the canary Service")
    replay.add_argument("--stable", metavar="URL", help="base URL of the stable Service (the comparison)")
    replay.add_argument("--batch", type=int, default=64, help="rows per request (default 64)")
    replay.set_defaults(handler=_cmd_analysis_replay)


__all__ = ["EXIT_STATUS", "ConfigError", "add_parser"]

"""``mlops train --config FILE``: train, evaluate, gate and register a model version
(:mod:`mlops_workflows.training.pipeline`). Exit 3 when the version failed its gate."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mlops_platform.errors import GateFailedError


def _cmd_train(args: argparse.Namespace) -> int:
    from mlops_workflows.procgc import few_collections

    with few_collections():  # it imports MLflow, its SQL store and scikit-learn, then exits (see procgc)
        from mlops_platform.settings import load_settings
        from mlops_workflows.settings import TrainingSettings
        from mlops_workflows.training.pipeline import TrainingSkipped, train

        settings = load_settings(TrainingSettings)
        outcome = train(Path(args.config), settings, overrides=args.set)
    if isinstance(outcome, TrainingSkipped):
        print(
            f"\n{outcome.model_name}: nothing registered: v{outcome.existing_version} was trained on the same "
            f"data ({outcome.dataset_source}, digest {outcome.dataset_digest}) with the same config "
            f"(digest {outcome.config_digest[:12]})"
        )
        _write_version_file(args.version_file, "")
        return 0
    gate = "PASSED" if outcome.gate.passed else "FAILED"
    print(
        f"\n{outcome.model_name} v{outcome.version}  gate {gate}"
        + (f"  aliases: {', '.join(outcome.aliases)}" if outcome.aliases else "")
    )
    for name in ("accuracy", "f1_macro", "roc_auc_ovr", "log_loss"):
        if name in outcome.metrics:
            print(f"  {name:<12} {outcome.metrics[name]:.4f}")
    for check in outcome.gate.checks:
        print(f"  [{'ok' if check.passed else 'FAIL'}] {check.message}")
    print(f"  dataset digest {outcome.dataset_digest}, commit {outcome.git_commit}")
    print(f"  run: {outcome.run_url}")
    if not outcome.gate.passed:
        failed = "; ".join(c.message for c in outcome.gate.failures)
        raise GateFailedError(f"{outcome.model_name} v{outcome.version} failed its gate: {failed}")
    _write_version_file(args.version_file, str(outcome.version))
    return 0


def _write_version_file(path: str | None, version: str) -> None:
    """The version this run registered and gated, or nothing: the train template's output parameter."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(version)


def add_parser(commands: Any) -> None:
    train = commands.add_parser("train", help="train, evaluate, gate and register a model version")
    train.add_argument(
        "--config", required=True, metavar="FILE", help="training config (workflows/models/*.yaml)"
    )
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set estimator.params.n_estimators=20 (repeatable)",
    )
    train.add_argument(
        "--version-file",
        metavar="FILE",
        help="write the number of the version this run registered and gated here (empty when it registered "
        "nothing); the train workflow's output parameter",
    )
    train.set_defaults(handler=_cmd_train)

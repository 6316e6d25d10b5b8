"""The `mlops` command line: one entry point for every job, locally and in Argo Workflows.

Exit status shared by every command: 0 success; 1 unexpected error; 2 invalid input or
configuration (also argparse usage errors); 3 a gate refused (training: the version stays
registered as gate=failed; promote: nothing was written); 4 a service (tracking server, object
store, Git host) is unreachable; 130 interrupted. Some commands add their own codes, documented
with them: `drift` (10 drift detected, 11 insufficient data), `promote` (5 Git moved under the
bot), `analysis run` (5 inconclusive).
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_platform.errors import GateFailedError, InvalidInputError, MlopsError
from mlops_workflows.procgc import one_command_process

if TYPE_CHECKING:
    from mlops_platform.registry import Registry

Handler = Callable[[argparse.Namespace], int]


def _cmd_config(args: argparse.Namespace) -> int:
    from mlops_platform.settings import PlatformSettings, load_settings

    settings = load_settings(PlatformSettings)
    shown = settings.describe()
    width = max(len(k) for k in shown)
    for key, value in shown.items():
        print(f"{key:<{width}}  {value}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
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


def _registry() -> Registry:
    from mlops_platform.registry import Registry
    from mlops_platform.settings import PlatformSettings, load_settings

    registry = Registry(load_settings(PlatformSettings))
    registry.check_reachable()
    return registry


def _cmd_models_list(args: argparse.Namespace) -> int:
    from mlops_workflows.models_cmd import list_models

    print(list_models(_registry()))
    return 0


def _cmd_models_show(args: argparse.Namespace) -> int:
    from mlops_workflows.models_cmd import show_model

    print(show_model(_registry(), args.name, args.version))
    return 0


def _cmd_models_add(args: argparse.Namespace) -> int:
    from mlops_platform.manifests.modelset import add

    _print_written(add(Path(args.root), args.name, Path(args.from_config)))
    print("next: hack/validate, then commit these files in one pull request")
    return 0


def _cmd_models_sync(args: argparse.Namespace) -> int:
    from mlops_platform.manifests.modelset import sync

    _print_written(sync(Path(args.root)))
    return 0


def _print_written(paths: Sequence[Path]) -> None:
    for path in paths:
        print(f"wrote {path}")
    if not paths:
        print("nothing to write: every generated file matches workflows/models/")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops",
        description="Model lifecycle: train, register and gate; serve; batch-predict; detect drift; promote.",
        epilog="Settings come from the environment (see `mlops config`).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config = commands.add_parser("config", help="print the effective settings (secrets masked)")
    config.set_defaults(handler=_cmd_config)

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

    models = commands.add_parser("models", help="the registry's models; add a model to the repository")
    models_sub = models.add_subparsers(dest="models_command", required=True, metavar="SUBCOMMAND")
    models_list = models_sub.add_parser("list", help="registered models, versions and aliases")
    models_list.set_defaults(handler=_cmd_models_list)
    models_show = models_sub.add_parser("show", help="versions of a model, or one version in detail")
    models_show.add_argument("name")
    models_show.add_argument("--version", type=int, help="show this version in detail")
    models_show.set_defaults(handler=_cmd_models_show)
    models_add = models_sub.add_parser(
        "add",
        help="add a model to this repository: its training config, then everything `sync` writes",
        description="Copy FILE to workflows/models/NAME.yaml and write what the platform needs of it "
        "(see `mlops models sync`).",
    )
    models_add.add_argument("name", metavar="NAME", help="the model's name (its config's model_name)")
    models_add.add_argument("--from-config", required=True, metavar="FILE", help="its training config")
    models_add.add_argument("--root", default=".", metavar="DIR", help="repository root (default: .)")
    models_add.set_defaults(handler=_cmd_models_add)
    models_sync = models_sub.add_parser(
        "sync",
        help="write what workflows/models/*.yaml generate (CronWorkflows, semaphores, owners, serving folders)",
        description="From the training configs in workflows/models/: rewrite "
        "workflows/manifests/models.generated.yaml (each model's CronWorkflows and semaphore) and the "
        "models block of .github/CODEOWNERS (each model's owners), and create a missing "
        "serving/manifests/models/<model>/<env>/ (never rewritten: the promotion bot edits it).",
    )
    models_sync.add_argument("--root", default=".", metavar="DIR", help="repository root (default: .)")
    models_sync.set_defaults(handler=_cmd_models_sync)

    # Each component adds its own commands; heavy imports stay inside their handlers.
    from mlops_local.cli import add_commands as add_local_commands
    from mlops_platform.analysis.cli import add_analysis_command
    from mlops_serving.cli import add_commands as add_serving_commands
    from mlops_workflows.argo_cli import add_commands as add_workflow_commands
    from mlops_workflows.jobs_cli import add_commands as add_job_commands
    from mlops_workflows.promote.cli import add_commands as add_promote_commands
    from mlops_workflows.promote.cli import add_models_commands

    add_models_commands(models_sub)  # models history
    add_serving_commands(commands)  # serve, keys
    add_job_commands(commands)  # batch-predict, drift
    add_promote_commands(commands)  # promote, rollback
    add_analysis_command(commands)  # analysis run
    add_workflow_commands(commands)  # workflow submit|status|...
    add_local_commands(commands)  # lifecycle, rollout status
    return parser


def _bad_input(exc: BaseException) -> str | None:
    """The one-line message of an error that means hostile or broken input (exit 2), else None.

    Files that are folders or not UTF-8, and NUL bytes (which no path or Git argument may hold),
    reach here from wherever a command reads its input; they are the caller's to fix, not a crash."""
    if isinstance(exc, UnicodeDecodeError):
        return f"input is not UTF-8 text ({exc.reason} at byte {exc.start})"
    if isinstance(exc, IsADirectoryError):
        return f"{exc.filename or 'a path'} is a folder; expected a file"
    if isinstance(exc, NotADirectoryError):
        return f"{exc.filename or 'a path'}: a parent of it is not a folder"
    if isinstance(exc, ValueError) and "null byte" in str(exc):
        return "an argument or file name contains a NUL byte"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; ``argv`` None means this process was started for it (the ``mlops`` script,
    ``python -m mlops_workflows.cli``), which lets it tune the garbage collector (see :mod:`.procgc`)."""
    if argv is not None:
        return _main(list(argv))
    with one_command_process():
        return _main(sys.argv[1:])


def _main(given: list[str]) -> int:
    for position, arg in enumerate(given, 1):
        if "\x00" in arg:
            print(f"error: argument {position} contains a NUL byte", file=sys.stderr)
            return InvalidInputError.exit_code
    args = build_parser().parse_args(given)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        warnings.filterwarnings("ignore")
    handler: Handler = args.handler
    try:
        return handler(args)
    except MlopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (UnicodeDecodeError, OSError, ValueError) as exc:
        message = _bad_input(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return InvalidInputError.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

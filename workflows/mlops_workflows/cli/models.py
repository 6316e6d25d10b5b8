"""``mlops models list|show|history|add|sync``: what the registry holds (:mod:`mlops_workflows.models`),
which version ran in an environment when (:mod:`mlops_workflows.promote.history`), and a model's files in
this repository (:mod:`mlops_gitops.manifests.modelset`, repository tooling: not in the images)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlops_platform.environments import LISTED as ENVIRONMENTS
from mlops_workflows.cli._shared import bot, registry


def _cmd_models_list(args: argparse.Namespace) -> int:
    from mlops_workflows.models import list_models

    print(list_models(registry()))
    return 0


def _cmd_models_show(args: argparse.Namespace) -> int:
    from mlops_workflows.models import show_model

    print(show_model(registry(), args.name, args.version))
    return 0


def _cmd_history(args: argparse.Namespace) -> int:
    from mlops_platform.registry_names import PRODUCTION
    from mlops_workflows.promote.history import format_history

    env = args.env or PRODUCTION
    print(format_history(bot().history(args.name, env, args.rev), args.name, env))
    return 0


def _cmd_models_add(args: argparse.Namespace) -> int:
    from mlops_gitops.manifests.modelset import add

    _print_written(add(Path(args.root), args.name, Path(args.from_config)))
    print("next: hack/validate, then commit these files in one pull request")
    return 0


def _cmd_models_sync(args: argparse.Namespace) -> int:
    from mlops_gitops.manifests.modelset import sync

    _print_written(sync(Path(args.root)))
    return 0


def _print_written(paths: Sequence[Path]) -> None:
    for path in paths:
        print(f"wrote {path}")
    if not paths:
        print("nothing to write: every generated file matches workflows/models/")


def add_parser(commands: Any) -> None:
    models = commands.add_parser("models", help="the registry's models; add a model to the repository")
    models_sub = models.add_subparsers(dest="models_command", required=True, metavar="SUBCOMMAND")
    models_list = models_sub.add_parser("list", help="registered models, versions and aliases")
    models_list.set_defaults(handler=_cmd_models_list)
    models_show = models_sub.add_parser("show", help="versions of a model, or one version in detail")
    models_show.add_argument("name")
    models_show.add_argument("--version", type=int, help="show this version in detail")
    models_show.set_defaults(handler=_cmd_models_show)

    history = models_sub.add_parser(
        "history", help="which version ran in an environment when (from Git history)"
    )
    history.add_argument("name", metavar="NAME")
    history.add_argument("--env", choices=ENVIRONMENTS, metavar="ENV",
                         help="environment: %(choices)s (default: the last)")
    history.add_argument("--rev", help="Git revision to read (default: the fetched base branch)")
    history.set_defaults(handler=_cmd_history)
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

"""``mlops models list|show|history``: what the registry holds (:mod:`mlops_workflows.models`) and which
version ran in an environment when (:mod:`mlops_workflows.promote.history`)."""

from __future__ import annotations

import argparse
from typing import Any

from mlops_platform.registry_names import ENVIRONMENTS, PRODUCTION
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
    from mlops_workflows.promote.history import format_history

    print(format_history(bot().history(args.name, args.env, args.rev), args.name, args.env))
    return 0


def add_parser(commands: Any) -> None:
    models = commands.add_parser("models", help="inspect the model registry")
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
    history.add_argument("--env", choices=ENVIRONMENTS, default=PRODUCTION, help="environment (default: production)")
    history.add_argument("--rev", help="Git revision to read (default: the fetched base branch)")
    history.set_defaults(handler=_cmd_history)

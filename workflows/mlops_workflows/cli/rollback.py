"""``mlops rollback``: open a pull request back to the previous (or a given) version
(:meth:`mlops_workflows.promote.bot.Bot.rollback`).

Exit status (besides the CLI's common ones): 3 a gate refused the rollback and nothing was written; 5 Git
moved under the bot and nothing was forced.
"""

from __future__ import annotations

import argparse
from typing import Any

from mlops_platform.environments import LISTED as ENVIRONMENTS
from mlops_workflows.cli._shared import bot


def _cmd_rollback(args: argparse.Namespace) -> int:
    bot().rollback(args.name, args.env, args.reason, to_version=args.to_version, dry_run=args.dry_run)
    return 0


def add_parser(commands: Any) -> None:
    rollback = commands.add_parser(
        "rollback",
        help="open a pull request back to the previous (or a given) version",
        description="Open a pull request that pins the version before the current one (from Git history), "
        "or --to-version, with the reason in the commit and the pull request.",
    )
    rollback.add_argument("name", metavar="NAME", help="registered model name")
    rollback.add_argument("--env", required=True, choices=ENVIRONMENTS, metavar="ENV",
                          help="environment to roll back: %(choices)s")
    rollback.add_argument("--to-version", type=int, help="version to go back to (default: the previous pin)")
    rollback.add_argument("--reason", required=True, help="why (goes into the commit and the pull request)")
    rollback.add_argument("--dry-run", action="store_true", help="print the diff and the pull request; write nothing")
    rollback.set_defaults(handler=_cmd_rollback)

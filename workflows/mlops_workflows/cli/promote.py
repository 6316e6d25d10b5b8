"""``mlops promote``: open (or update) the pull request that pins a model version in an environment, revert an
aborted canary, or finalize a landed change (:mod:`mlops_workflows.promote.bot`).

Exit status (besides the CLI's common ones): 3 a gate refused the promotion and nothing was written; 5 Git
moved under the bot (a push stayed rejected, or the promotion branch holds someone else's commits) and
nothing was forced.
"""

from __future__ import annotations

import argparse
from typing import Any

from mlops_platform.environments import LISTED as ENVIRONMENTS
from mlops_workflows.cli._shared import bot


def _need(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[str, str]:
    if args.rollout:
        from mlops_workflows.promote.bot import parse_rollout

        model, env = parse_rollout(args.rollout)
        if (args.name and args.name != model) or (args.env and args.env != env):
            parser.error(f"--rollout {args.rollout} names {model} in {env}, which contradicts NAME/--to")
        return model, env
    if not args.name or not args.env:
        parser.error("give NAME and --to ENV (or --rollout NAMESPACE/NAME)")
    return str(args.name), str(args.env)


def _cmd_promote(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    model, env = _need(args, parser)
    if args.finalize:
        if args.from_alias or args.dry_run:
            parser.error("--finalize takes no --from-alias or --dry-run: it reads the version from Git")
        bot().finalize(model, env, expect=args.version)
        return 0
    if args.revert_aborted:
        if args.from_alias:
            parser.error("--revert-aborted takes --version (the aborted version), not --from-alias")
        bot().revert_aborted(model, env, aborted=args.version, reason=args.reason, dry_run=args.dry_run)
        return 0
    if args.rollout or args.reason:
        parser.error("--rollout and --reason go with --revert-aborted (use `mlops rollback` for a manual rollback)")
    bot().promote(model, env, version=args.version, alias=args.from_alias, dry_run=args.dry_run)
    return 0


def add_parser(commands: Any) -> None:
    promote = commands.add_parser(
        "promote",
        help="open a pull request that pins a model version in an environment (gated)",
        description="Pin a model version in an environment through a reviewed Git change: gates, a one-line "
        "edit of the release file, a branch promote/<model>/<env>/v<N>, and a pull request with a model card. "
        "Running it again updates the same branch and pull request.",
    )
    promote.add_argument("name", nargs="?", metavar="NAME", help="registered model name")
    promote.add_argument("--to", "--env", dest="env", choices=ENVIRONMENTS, metavar="ENV",
                         help="target environment: %(choices)s")
    chosen = promote.add_mutually_exclusive_group()
    chosen.add_argument(
        "--version",
        type=int,
        help="version to promote (with --revert-aborted: the aborted one; with --finalize: the one whose "
        "rollout completed, nothing happens when Git no longer pins it)",
    )
    chosen.add_argument(
        "--from-alias", metavar="ALIAS", help="promote the version holding this alias (default: the previous env)"
    )
    mode = promote.add_mutually_exclusive_group()
    mode.add_argument(
        "--revert-aborted",
        action="store_true",
        help="the canary of the pinned version was aborted: open the pull request back to the previous version",
    )
    mode.add_argument(
        "--finalize",
        action="store_true",
        help="after the change landed: move the MLflow alias to the version Git pins, tag it with PR and commit",
    )
    promote.add_argument(
        "--rollout",
        metavar="NAMESPACE/NAME",
        help="with --revert-aborted or --finalize: the Rollout (names model and env)",
    )
    promote.add_argument("--reason", help="with --revert-aborted: extra text for the pull request")
    promote.add_argument("--dry-run", action="store_true", help="print the diff and the pull request; write nothing")
    promote.set_defaults(handler=_cmd_promote, parser=promote)

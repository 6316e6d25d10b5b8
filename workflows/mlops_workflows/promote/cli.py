"""`mlops promote`, `mlops rollback` and `mlops models history`: argparse wiring, heavy imports inside handlers.

Exit status (besides the CLI's common ones): 3 a gate refused the promotion or rollback and nothing
was written; 5 Git moved under the bot (a push stayed rejected, or the promotion branch holds
someone else's commits) and nothing was forced.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from mlops_platform.registry_names import ENVIRONMENTS, PRODUCTION

if TYPE_CHECKING:
    from mlops_workflows.promote.bot import Bot


def _bot() -> Bot:
    from mlops_platform.settings import load_settings
    from mlops_workflows.promote.bot import Bot
    from mlops_workflows.promote.settings import PromotionSettings

    settings = load_settings(PromotionSettings)

    def registry() -> Any:
        from mlops_platform.registry import Registry

        found = Registry(settings)
        found.check_reachable()
        return found

    return Bot(settings, registry_factory=registry)


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
        _bot().finalize(model, env, expect=args.version)
        return 0
    if args.revert_aborted:
        if args.from_alias:
            parser.error("--revert-aborted takes --version (the aborted version), not --from-alias")
        _bot().revert_aborted(model, env, aborted=args.version, reason=args.reason, dry_run=args.dry_run)
        return 0
    if args.rollout or args.reason:
        parser.error("--rollout and --reason go with --revert-aborted (use `mlops rollback` for a manual rollback)")
    _bot().promote(model, env, version=args.version, alias=args.from_alias, dry_run=args.dry_run)
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    _bot().rollback(args.name, args.env, args.reason, to_version=args.to_version, dry_run=args.dry_run)
    return 0


def _cmd_history(args: argparse.Namespace) -> int:
    from mlops_workflows.promote.history import format_history

    bot = _bot()
    print(format_history(bot.history(args.name, args.env, args.rev), args.name, args.env))
    return 0


def add_commands(commands: Any) -> None:
    """Add `promote` and `rollback` to the `mlops` subcommands."""
    promote = commands.add_parser(
        "promote",
        help="open a pull request that pins a model version in an environment (gated)",
        description="Pin a model version in an environment through a reviewed Git change: gates, a one-line "
        "edit of the release file, a branch promote/<model>/<env>/v<N>, and a pull request with a model card. "
        "Running it again updates the same branch and pull request.",
    )
    promote.add_argument("name", nargs="?", metavar="NAME", help="registered model name")
    promote.add_argument("--to", "--env", dest="env", choices=ENVIRONMENTS, help="target environment")
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

    rollback = commands.add_parser(
        "rollback",
        help="open a pull request back to the previous (or a given) version",
        description="Open a pull request that pins the version before the current one (from Git history), "
        "or --to-version, with the reason in the commit and the pull request.",
    )
    rollback.add_argument("name", metavar="NAME", help="registered model name")
    rollback.add_argument("--env", required=True, choices=ENVIRONMENTS, help="environment to roll back")
    rollback.add_argument("--to-version", type=int, help="version to go back to (default: the previous pin)")
    rollback.add_argument("--reason", required=True, help="why (goes into the commit and the pull request)")
    rollback.add_argument("--dry-run", action="store_true", help="print the diff and the pull request; write nothing")
    rollback.set_defaults(handler=_cmd_rollback)


def add_models_commands(models_subparsers: Any) -> None:
    """Add `models history` to the `mlops models` subcommands."""
    history = models_subparsers.add_parser(
        "history", help="which version ran in an environment when (from Git history)"
    )
    history.add_argument("name", metavar="NAME")
    history.add_argument("--env", choices=ENVIRONMENTS, default=PRODUCTION, help="environment (default: production)")
    history.add_argument("--rev", help="Git revision to read (default: the fetched base branch)")
    history.set_defaults(handler=_cmd_history)

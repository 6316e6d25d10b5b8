"""The `mlops` command line: one entry point for every job, locally and in Argo Workflows.

Exit statuses come from one table, :class:`mlops_platform.exit_status.ExitStatus` (one meaning
each): 0 success; 1 unexpected error; 2 invalid input or configuration (also argparse usage
errors); 3 a gate refused; 4 a service is unreachable; 5 `promote`: Git moved under the bot;
6 `analysis run`: inconclusive; 10/11 `drift`: drift detected / insufficient data; 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable, Sequence

from mlops_platform.errors import ConfigError, MlopsError
from mlops_platform.exit_status import ExitStatus
from mlops_workflows.cli import (
    analysis,
    baseline,
    batch_predict,
    config,
    drift,
    environments,
    keys,
    lifecycle,
    models,
    promote,
    rollback,
    rollout,
    serve,
    train,
    workflow,
)
from mlops_workflows.procgc import one_command_process

Handler = Callable[[argparse.Namespace], int]

# One module per command, in the order of `mlops --help`; each only parses its arguments, and its handler
# imports the domain code it runs.
COMMANDS = (config, train, models, environments, serve, keys, batch_predict, drift, baseline, promote, rollback,
            analysis, workflow, lifecycle, rollout)
# Packages a command may need that an installation may lack: the images ship neither the local mode
# (`mlops lifecycle`, `mlops rollout`) nor the repository tooling (`mlops analysis run`,
# `mlops models add|sync`, `mlops environments`).
NOT_IN_IMAGES = ("mlops_local", "mlops_gitops")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops",
        description="Model lifecycle: train, register and gate; serve; batch-predict; detect drift; promote.",
        epilog="Settings come from the environment (see `mlops config`).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
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
            return ExitStatus.INVALID_INPUT
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
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in NOT_IN_IMAGES:
            raise
        command = " ".join(filter(None, [args.command, getattr(args, f"{args.command}_command", None)]))
        print(f"error: `mlops {command}` needs the {missing} package, which this installation "
              "does not have (the images ship only what runs; install the repository: pip install -e '.[local]')",
              file=sys.stderr)
        return ConfigError.exit_code
    except (UnicodeDecodeError, OSError, ValueError) as exc:
        message = _bad_input(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return ExitStatus.INVALID_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitStatus.INTERRUPTED


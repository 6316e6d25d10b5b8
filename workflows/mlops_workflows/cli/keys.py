"""``mlops keys create``: a new API key of the model server, shown once, with the hash line to store
(:func:`mlops_serving.auth.generate_key`)."""

from __future__ import annotations

import argparse
from typing import Any


def _cmd_keys_create(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mlops_serving.auth import generate_key

    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    key, line = generate_key(models)
    if args.append:
        path = Path(args.append)
        with path.open("a") as handle:
            handle.write(line + "\n")
    print(f"API key (shown once; it is stored nowhere): {key}")
    print("Hash line for MLOPS_SERVING_API_KEYS_FILE" + (f" (appended to {args.append}):" if args.append else ":"))
    print(line)
    return 0


def add_parser(commands: Any) -> None:
    keys = commands.add_parser("keys", help="manage API keys of the model server")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="SUBCOMMAND")
    create = keys_sub.add_parser("create", help="print a new API key once, with the hash line to store")
    create.add_argument("--models", metavar="NAME[,NAME...]", help="limit the key to these models (default: all)")
    create.add_argument("--append", metavar="FILE", help="also append the hash line to this keys file")
    create.set_defaults(handler=_cmd_keys_create)

"""``mlops serve`` and ``mlops keys create``, added to the `mlops` command line.

Only argparse here at import time: the parser must build fast; handlers import what they need.
"""

from __future__ import annotations

import argparse
from typing import Any


def _cmd_serve(args: argparse.Namespace) -> int:
    from mlops_platform.settings import load_settings
    from mlops_serving.server import run
    from mlops_serving.settings import ServingSettings

    overrides: dict[str, Any] = {}
    if args.model:
        overrides["models"] = [spec for value in args.model for spec in value.split(",") if spec.strip()]
    for name in ("host", "port"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    return run(load_settings(ServingSettings, **overrides))


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


def add_commands(commands: Any) -> None:
    """Add ``serve`` and ``keys`` to the subparsers of the `mlops` CLI."""
    serve = commands.add_parser(
        "serve", help="run the model server (one process; settings from MLOPS_SERVING_*)",
        description="Serve registered model versions over HTTP: /predict, /invocations (MLflow), /v2 (Open "
        "Inference Protocol), /healthz, /readyz, /metrics. Settings come from the environment "
        "(MLOPS_SERVING_MODELS, MLOPS_SERVING_AUTH, ...); the options below override them.",
    )
    serve.add_argument("--model", action="append", metavar="NAME:VERSION|NAME@ALIAS",
                       help="model to serve (repeatable or comma-separated); overrides MLOPS_SERVING_MODELS")
    serve.add_argument("--host", help="address to listen on (MLOPS_SERVING_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (MLOPS_SERVING_PORT, default 8080)")
    serve.set_defaults(handler=_cmd_serve)

    keys = commands.add_parser("keys", help="manage API keys of the model server")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="SUBCOMMAND")
    create = keys_sub.add_parser("create", help="print a new API key once, with the hash line to store")
    create.add_argument("--models", metavar="NAME[,NAME...]", help="limit the key to these models (default: all)")
    create.add_argument("--append", metavar="FILE", help="also append the hash line to this keys file")
    create.set_defaults(handler=_cmd_keys_create)

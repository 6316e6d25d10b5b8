"""``mlops serve``: run the model server (:mod:`mlops_serving.server`), one process.

Only argparse here at import time: the parser must build fast; the handler imports what it needs.
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


def add_parser(commands: Any) -> None:
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

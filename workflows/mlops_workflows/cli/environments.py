"""``mlops environments list|sync``: the platform's environments (:mod:`mlops_platform.environments`) and
the shared manifests their list determines (:mod:`mlops_gitops.manifests.envset`, repository tooling:
not in the images)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _cmd_environments_list(args: argparse.Namespace) -> int:
    from mlops_gitops.manifests.envset import read_list

    print("\n".join(read_list(Path(args.root))))
    return 0


def _cmd_environments_sync(args: argparse.Namespace) -> int:
    from mlops_gitops.manifests.envset import LIST, sync

    written = sync(Path(args.root))
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"nothing to write: every generated file and block matches {LIST}")
    return 0


def add_parser(commands: Any) -> None:
    environments = commands.add_parser(
        "environments", help="the platform's environments; write what their list determines"
    )
    sub = environments.add_subparsers(dest="environments_command", required=True, metavar="SUBCOMMAND")
    listing = sub.add_parser("list", help="the environments, in promotion order")
    listing.add_argument("--root", default=".", metavar="DIR", help="repository root (default: .)")
    listing.set_defaults(handler=_cmd_environments_list)
    sync = sub.add_parser(
        "sync",
        help="write what infra/mlops_platform/environments.yaml determines (namespaces, hosts, buckets, ...)",
        description="From infra/mlops_platform/environments.yaml: rewrite apps/secrets-models.generated.yaml "
        "(each environment's secrets Application) and every '# BEGIN environments <what>' block (the "
        "namespaces, the gateway's hosts, the buckets, a secret store's API-key names, the workflow "
        "parameters' enums); create a missing infra/secrets/models-<env>/ and, as `mlops models sync`, "
        "each model's missing serving/manifests/models/<model>/<env>/ (neither is ever rewritten).",
    )
    sync.add_argument("--root", default=".", metavar="DIR", help="repository root (default: .)")
    sync.set_defaults(handler=_cmd_environments_sync)

"""``python -m mlops_serving``: the container entry point; settings from the environment only."""

from __future__ import annotations

import sys

from mlops_platform.errors import MlopsError
from mlops_platform.settings import load_settings
from mlops_serving.server import run
from mlops_serving.settings import ServingSettings


def main() -> int:
    try:
        settings = load_settings(ServingSettings)
    except MlopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())

"""``python -m mlops_serving``: the container entry point; settings from the environment only."""

from __future__ import annotations

import gc
import sys


def main() -> int:
    # Off while the libraries are imported and the model loads: the full collections an import of
    # this size triggers find next to nothing (mlops_serving.runtime._freeze_heap turns it on again).
    gc.disable()
    from mlops_platform.errors import MlopsError
    from mlops_platform.settings import load_settings
    from mlops_serving.server import run
    from mlops_serving.settings import ServingSettings

    try:
        settings = load_settings(ServingSettings)
    except MlopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())

"""The model server: real-time inference for registered model versions over three protocols.

Layers, as in MLServer and KServe: :mod:`.routes` translate HTTP only; :mod:`.protocols` parse
and render each wire format; :mod:`.dataplane` holds the transport-free logic (readiness,
validation limits, batching, metrics, prediction log); :mod:`.runtime` loads and runs models.
Start it with ``mlops serve`` or ``python -m mlops_serving`` (one uvicorn process per container;
see :mod:`.metrics` for why).
"""

from typing import Any


def __getattr__(name: str) -> Any:
    # ``__version__`` is looked up on first use (importlib.metadata), so that `mlops --help` stays fast.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("mlops")
        except PackageNotFoundError:  # pragma: no cover - source tree without installation
            value = "0.0.0"
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

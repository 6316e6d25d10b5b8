"""The model server: real-time inference for registered model versions over three protocols.

Layers, as in MLServer and KServe: :mod:`.routes` translate HTTP only; :mod:`.protocols` parse
and render each wire format; :mod:`.dataplane` holds the transport-free logic (readiness,
validation limits, batching, metrics, prediction log); :mod:`.runtime` loads and runs models.
Start it with ``mlops serve`` or ``python -m mlops_serving`` (one uvicorn process per container;
see :mod:`.metrics` for why).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mlops")
except PackageNotFoundError:  # pragma: no cover - source tree without installation
    __version__ = "0.0.0"

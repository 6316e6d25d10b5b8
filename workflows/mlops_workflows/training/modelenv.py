"""What a logged model needs to be loaded and served elsewhere: its pip requirements, computed once.

MLflow infers a model's requirements, when none are passed, by re-importing the saved model in a
subprocess and recording every distribution that process imported (11-13 s here, and it picks up
whatever else happened to be imported: pytest, rich ...). The training job passes them instead:
the sklearn flavour saved with skops needs ``mlflow``, ``scikit-learn`` and ``skops`` (MLflow's own
defaults for that flavour), plus ``numpy`` and ``scipy`` under them and ``pandas`` for the
signature's DataFrame input: each pinned to the version installed here.

MLflow still checks the passed requirements against this environment (a warning on a mismatch).
That check reads ``importlib.metadata.version`` of each requirement, but first builds a map of
every importable module to its distribution (``packages_distributions``: a scan of the RECORD file
of every installed distribution, 0.7 s or more) that it consults only when a requirement has no
distribution metadata. :func:`requirements_check_scope` hands it the map of the pinned packages
for the duration of ``log_model``; the check itself runs unchanged.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from importlib import metadata

MODEL_PACKAGES = {
    "mlflow": "mlflow",
    "numpy": "numpy",
    "pandas": "pandas",
    "scikit-learn": "sklearn",
    "scipy": "scipy",
    "skops": "skops",
}
"""Distribution -> top-level module of everything a logged sklearn model needs (see the module doc)."""


@functools.cache
def model_pip_requirements() -> list[str]:
    """``MODEL_PACKAGES`` pinned to the versions installed here, e.g. ``scikit-learn==1.9.1``."""
    return [
        f"{name}=={metadata.version(name if name != 'mlflow' else _mlflow_distribution())}" for name in MODEL_PACKAGES
    ]


def _mlflow_distribution() -> str:
    """The installed MLflow distribution: full ``mlflow`` or, in the job images, ``mlflow-skinny``
    (same version; the model is served by either)."""
    try:
        metadata.version("mlflow")
    except metadata.PackageNotFoundError:
        return "mlflow-skinny"
    return "mlflow"


@contextlib.contextmanager
def requirements_check_scope() -> Iterator[None]:
    """While it is open, MLflow's requirement check maps modules to distributions with
    ``MODEL_PACKAGES`` instead of scanning every installed distribution; afterwards MLflow builds
    its full map again when something needs it (e.g. inferring another model's requirements).
    Nothing changes when MLflow already holds its full map, or no longer keeps one there."""
    from mlflow.utils import requirements_utils

    if getattr(requirements_utils, _MAP, ()) is not None:
        yield
        return
    ours = {module: [name] for name, module in MODEL_PACKAGES.items()}
    setattr(requirements_utils, _MAP, ours)
    try:
        yield
    finally:
        if getattr(requirements_utils, _MAP) is ours:
            setattr(requirements_utils, _MAP, None)


_MAP = "_MODULES_TO_PACKAGES"
"""MLflow's module -> distributions map (None until its first use)."""

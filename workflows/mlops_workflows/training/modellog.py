"""Logging the trained model to its run: MLflow's sklearn flavour, saved with skops, without the
serving-input replay.

``mlflow.sklearn.log_model`` saves the model (skops dump, then a skops load with the trusted types,
which fails on a type nobody listed), writes the signature, the input example and its serving form,
the passed requirements, and logs the folder as the run's logged model. After that it replays the
serving example: it loads the saved folder a second time as a pyfunc model (another skops load,
plus MLflow's pyfunc loaders) and predicts on it, 0.15-0.2 s of every training run. That replay
only logs a warning when it fails, never raises, and the training job keeps MLflow's log at ERROR,
so it changes nothing the job records or reports. This module calls the same ``Model.log`` with the
same sklearn flavour and arguments and asks it to skip the replay (``validate_serving_input``, the
switch MLflow itself reads from the flavour's arguments); the files and the MLmodel are those
``mlflow.sklearn.log_model`` writes.

The logged model (MLflow's record of the model: its name, source run, the run's params, and the tags
of MLflow's run context) is created here with those same fields, the context tags given by the
caller, who resolved them once for the run, instead of ``Model.log`` resolving them again.
"""

from __future__ import annotations

import types
from typing import Any

FLAVOR = "mlflow.sklearn"


def log_sklearn_model(
    model: Any,
    run_id: str,
    *,
    experiment_id: str,
    run_params: dict[str, str],
    context_tags: dict[str, str],
    signature: Any,
    input_example: Any,
    pip_requirements: list[str],
    trusted_types: list[str],
) -> Any:
    """``mlflow.sklearn.log_model(model, name="model", ...)`` in skops format, into run ``run_id``
    of ``experiment_id`` (whose params are ``run_params``; ``context_tags`` are the tags MLflow's run
    context gives it); returns its ``ModelInfo``."""
    import mlflow.sklearn
    from mlflow import MlflowClient
    from mlflow.models import Model

    logged = MlflowClient().create_logged_model(
        experiment_id, name="model", source_run_id=run_id, tags=context_tags, params=run_params
    )
    return Model.log(
        artifact_path=None,
        name="model",
        flavor=_without_serving_replay(mlflow.sklearn),
        flavor_name=FLAVOR,
        run_id=run_id,
        model_id=logged.model_id,
        sk_model=model,
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements,
        skops_trusted_types=trusted_types,
        validate_serving_input=False,
    )


def _without_serving_replay(flavor: types.ModuleType) -> types.ModuleType:
    """``flavor`` as ``Model.log`` sees it (same name, same ``save_model``), but its ``save_model``
    does not receive the ``validate_serving_input`` switch, which is ``Model.log``'s, not the flavour's."""

    def save_model(*args: Any, validate_serving_input: bool = True, **kwargs: Any) -> Any:
        del validate_serving_input
        return flavor.save_model(*args, **kwargs)

    adapter = types.ModuleType(flavor.__name__, flavor.__doc__)
    adapter.save_model = save_model  # type: ignore[attr-defined]
    return adapter

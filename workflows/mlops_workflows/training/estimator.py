"""Building the scikit-learn estimator named by a training config."""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from mlops_platform.errors import ConfigError
from mlops_workflows.training.config import EstimatorConfig


def build_estimator(config: EstimatorConfig) -> Any:
    """Instantiate ``config.class_`` with ``config.params``; only scikit-learn classifiers."""
    path = config.class_
    module_name, _, class_name = path.rpartition(".")
    if not module_name.startswith("sklearn.") or not class_name:
        raise ConfigError(
            f"estimator.class {path!r}: give the import path of a scikit-learn classifier, "
            "e.g. sklearn.ensemble.RandomForestClassifier"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ConfigError(
            f"estimator.class {path!r}: unknown estimator (no module {module_name!r})"
        ) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        candidates = [name for name in dir(module) if name[:1].isupper()]
        close = difflib.get_close_matches(class_name, candidates, n=1)
        hint = f"; did you mean {module_name}.{close[0]}?" if close else ""
        raise ConfigError(f"estimator.class {path!r}: unknown estimator{hint}")
    from sklearn.base import is_classifier

    if not isinstance(cls, type):
        raise ConfigError(f"estimator.class {path!r}: not a class")
    try:
        estimator = cls()
        if not is_classifier(estimator):
            raise ConfigError(f"estimator.class {path!r}: not a scikit-learn classifier")
        valid = estimator.get_params()
        unknown = sorted(set(config.params) - set(valid))
        if unknown:
            raise ConfigError(
                f"estimator.params: {class_name} has no parameter(s) {', '.join(unknown)}; "
                f"valid: {', '.join(sorted(valid))}"
            )
        estimator.set_params(**config.params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"estimator.params for {class_name}: {exc}") from exc
    return estimator


def describe(config: EstimatorConfig) -> str:
    params = ", ".join(f"{k}={v!r}" for k, v in config.params.items())
    return f"{config.class_.rpartition('.')[2]}({params})"

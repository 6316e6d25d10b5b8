"""Holdout evaluation of a classifier.

Gate-able metrics are :data:`METRIC_NAMES`; per-class precision and recall are logged as
``precision.<class>`` and ``recall.<class>`` for people to read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

METRIC_NAMES = ("accuracy", "f1_macro", "roc_auc_ovr", "log_loss")
LOWER_IS_BETTER = frozenset({"log_loss"})


def evaluate(model: Any, features: npt.NDArray[np.float64], target: Sequence[Any]) -> dict[str, float]:
    """Accuracy, macro F1, one-vs-rest ROC AUC, log loss and per-class precision/recall."""
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        log_loss,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    y_true = np.asarray(target)
    y_pred = model.predict(features)
    classes = list(model.classes_)
    metrics: dict[str, float] = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_macro": float(f1_score(y_true, y_pred, average="macro", labels=classes, zero_division=0)),
    }
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(features)
        metrics["log_loss"] = float(log_loss(y_true, proba, labels=classes))
        present = np.unique(y_true)
        if present.size >= 2:
            if len(classes) == 2:
                metrics["roc_auc_ovr"] = float(roc_auc_score(y_true == classes[1], proba[:, 1]))
            elif present.size == len(classes):
                metrics["roc_auc_ovr"] = float(
                    roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=classes)
                )
    precision, recall, _, _ = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    for cls, p, r in zip(classes, precision, recall, strict=True):
        metrics[f"precision.{cls}"] = float(p)
        metrics[f"recall.{cls}"] = float(r)
    return metrics

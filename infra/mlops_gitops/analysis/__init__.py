"""Run Argo Rollouts AnalysisTemplates locally, against a Prometheus URL, with Argo's semantics.

The same templates the Rollouts use (``serving/manifests/base/analysistemplate-*.yaml``) are
loaded, their ``{{args.*}}`` resolved, and every metric measured ``count`` times every
``interval``; each measurement is Successful, Failed, Inconclusive or Error by its
``successCondition``/``failureCondition`` (:mod:`mlops_gitops.analysis.expr`), and a metric
completes as Argo Rollouts' analysis controller decides (``failureLimit``,
``inconclusiveLimit``, ``consecutiveErrorLimit``, ``count``). Used by ``mlops analysis run`` and
by the local canary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_gitops.analysis.runner import (
        AnalysisResult,
        Measurement,
        Metric,
        MetricResult,
        PrometheusClient,
        load_templates,
        resolve_metrics,
        run_analysis,
    )

__all__ = [
    "AnalysisResult",
    "Measurement",
    "Metric",
    "MetricResult",
    "PrometheusClient",
    "load_templates",
    "resolve_metrics",
    "run_analysis",
]


def __getattr__(name: str) -> Any:
    # The runner (yaml, urllib) is imported on first use, so that `mlops --help` stays fast.
    if name in __all__:
        from mlops_gitops.analysis import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

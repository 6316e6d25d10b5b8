"""Staging health from Prometheus: the error ratio of a version and firing drift alerts.

Series names and labels come from :mod:`mlops_platform.metric_names` (the contract the model
server exports); the namespace of an environment is :func:`mlops_platform.environments.namespace`.
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from mlops_platform import environments
from mlops_platform import metric_names as mn
from mlops_platform.errors import ServiceUnavailableError


def namespace_of(env: str) -> str:
    return environments.namespace(env)


@dataclass(frozen=True)
class Health:
    requests: float
    errors: float
    drift_alerts: list[str]

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests > 0 else math.nan


class Prometheus:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, query: dict[str, str] | None = None) -> Any:
        url = f"{self.url}{path}" + (f"?{urlencode(query)}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                payload = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceUnavailableError(
                f"Prometheus unreachable at {self.url} ({reason}); check MLOPS_PROMETHEUS_URL"
            ) from exc
        if payload.get("status") != "success":
            raise ServiceUnavailableError(f"Prometheus {path} failed: {payload.get('error', payload)}")
        return payload.get("data")

    def scalar(self, expr: str) -> float | None:
        """The value of a query returning at most one sample; None for an empty result."""
        data = self._get("/api/v1/query", {"query": expr})
        result = data.get("result") if isinstance(data, dict) else None
        if not result:
            return None
        return float(result[0]["value"][1])

    def firing_alerts(self) -> list[dict[str, Any]]:
        data = self._get("/api/v1/alerts")
        alerts = data.get("alerts", []) if isinstance(data, dict) else []
        return [a for a in alerts if isinstance(a, dict) and a.get("state") == "firing"]


def _selector(env: str, model: str, version: int, extra: str = "") -> str:
    matchers = [
        f'namespace="{namespace_of(env)}"',
        f'{mn.LABEL_MODEL}="{model}"',
        f'{mn.LABEL_VERSION}="{version}"',
    ]
    if extra:
        matchers.append(extra)
    return f"{mn.SERVING_REQUESTS.name}{{{', '.join(matchers)}}}"


def queries(env: str, model: str, version: int, window: str) -> tuple[str, str]:
    """PromQL for the requests and the 5xx answers of one version in one environment over ``window``."""
    answered = f'{mn.LABEL_CODE}!="{mn.CODE_CLIENT_CLOSED}"'  # a client that went away is no answer
    total = f"sum(increase({_selector(env, model, version, answered)}[{window}]))"
    server_errors = mn.LABEL_CODE + '=~"5.."'
    errors = f"sum(increase({_selector(env, model, version, server_errors)}[{window}]))"
    return total, errors


def drift_alerts(prometheus: Prometheus, model: str, pattern: str) -> list[str]:
    """Names of firing alerts about ``model`` whose name matches ``pattern``."""
    regex = re.compile(pattern)
    names = []
    for alert in prometheus.firing_alerts():
        labels = alert.get("labels") or {}
        if labels.get(mn.LABEL_MODEL) == model and regex.fullmatch(str(labels.get("alertname", ""))):
            names.append(str(labels.get("alertname")))
    return sorted(set(names))


def health(prometheus: Prometheus, env: str, model: str, version: int, window: str, pattern: str) -> Health:
    total_q, errors_q = queries(env, model, version, window)
    total = prometheus.scalar(total_q) or 0.0
    errors = prometheus.scalar(errors_q) or 0.0
    return Health(requests=total, errors=errors, drift_alerts=drift_alerts(prometheus, model, pattern))

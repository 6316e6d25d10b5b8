"""Push job metrics to a Prometheus Pushgateway (the batch and drift jobs).

Batch jobs end before Prometheus could scrape them, so they push their results to a Pushgateway,
which Prometheus scrapes with ``honor_labels: true``. Each push names a *group*: the ``job`` label
plus grouping labels (``model``, ``version``, ``shard``) that the Pushgateway adds to every series
of the group. :func:`push` with ``replace=True`` is an HTTP PUT and replaces the whole group (a
run's complete result, so series of a previous run never linger); ``replace=False`` is a POST
and replaces only the metrics of the same name (a failed run updates its failure and last-run
series and leaves the last success in place).

Series are described by :class:`~mlops_platform.metric_names.MetricSpec` (the names are a
contract). Needs ``prometheus-client`` (the ``drift`` extra, which ``workflows`` includes).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mlops_platform.errors import ServiceUnavailableError
from mlops_platform.metric_names import MetricSpec
from mlops_platform.settings import mask_url

log = logging.getLogger(__name__)

PUSH_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Sample:
    """One value of one series: the labels beyond the grouping labels, and the value."""

    spec: MetricSpec
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


def push(
    url: str,
    job: str,
    grouping: Mapping[str, str],
    samples: Iterable[Sample],
    *,
    replace: bool,
    timeout: float = PUSH_TIMEOUT_S,
) -> None:
    """Push ``samples`` to the group ``job`` + ``grouping``; raise ServiceUnavailableError on failure."""
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, pushadd_to_gateway

    registry = CollectorRegistry()
    gauges: dict[str, Gauge] = {}
    for sample in samples:
        spec = sample.spec
        if spec.kind != "gauge":
            raise ValueError(f"{spec.name}: only gauges are pushed, not {spec.kind}s")
        names = tuple(n for n in spec.labels if n not in grouping)
        if set(sample.labels) != set(names):
            raise ValueError(f"{spec.name}: expected labels {names}, got {tuple(sample.labels)}")
        gauge = gauges.get(spec.name)
        if gauge is None:
            gauge = gauges[spec.name] = Gauge(spec.name, spec.help, names, registry=registry)
        (gauge.labels(**sample.labels) if names else gauge).set(sample.value)
    send = push_to_gateway if replace else pushadd_to_gateway
    try:
        send(url, job=job, registry=registry, grouping_key=dict(grouping), timeout=timeout)
    except OSError as exc:  # urllib's URLError and HTTPError are OSErrors
        raise ServiceUnavailableError(f"cannot push metrics to the Pushgateway at {mask_url(url)}: {exc}") from exc
    log.info("pushed %d metric(s) to %s, group job=%s %s", len(gauges), mask_url(url), job, dict(grouping))


def push_or_warn(
    url: str | None,
    job: str,
    grouping: Mapping[str, str],
    samples: Iterable[Sample],
    *,
    replace: bool,
) -> bool:
    """:func:`push` when a Pushgateway is configured; a failure is logged, not raised.

    A job's result (its output, its exit status) does not depend on monitoring being reachable;
    a push that keeps failing shows up as the staleness alert. Returns whether a push happened.
    """
    if not url:
        return False
    try:
        push(url, job, grouping, samples, replace=replace)
    except ServiceUnavailableError as exc:
        log.warning("%s", exc)
        return False
    return True

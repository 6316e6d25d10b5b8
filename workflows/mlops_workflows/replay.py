"""``mlops analysis replay``: a labelled quality check of a canary, for a staging analysis Job.

Nothing sends traffic to staging, so request-count analyses stay Inconclusive there. This replays
the canary version's labelled holdout rows (stored with the version at training time, tag
``holdout``) through the canary Service and computes the canary's accuracy on those labels; with a
stable Service, the same rows through it too. The check fails when the canary's accuracy is below
the version's gate threshold (``gate.min.accuracy`` of its training config) or worse than the
stable track's by more than the gate's tolerance (``gate.tolerance.accuracy``). A check the config
does not define is skipped (and said so).

Exit status: 0 passed, 3 failed (the analysis metric fails), 2 invalid input (no such version, no
holdout, a track serving another version), 4 a service unreachable.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from mlops_platform import registry_names as reg
from mlops_platform.errors import InvalidInputError, NotFoundError, ServiceUnavailableError
from mlops_platform.registry import open_registry
from mlops_platform.settings import PlatformSettings, mask_url

ACCURACY = "accuracy"


@dataclass(frozen=True)
class TrackResult:
    url: str
    version: str
    accuracy: float
    rows: int


@dataclass
class ReplayResult:
    model: str
    version: str
    canary: TrackResult
    stable: TrackResult | None
    minimum: float | None
    tolerance: float | None
    checks: list[tuple[bool, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(ok for ok, _ in self.checks)


def _predict(url: str, model: str, rows: list[list[float]], api_key: str | None, timeout: float) -> dict[str, Any]:
    data = json.dumps({"features": rows}).encode()
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["x-api-key"] = api_key
    request = urllib.request.Request(f"{url.rstrip('/')}/models/{model}/predict", data, headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: dict[str, Any] = json.loads(response.read())
            return body
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:200]
        if exc.code >= 500:
            raise ServiceUnavailableError(f"{mask_url(url)} answered {exc.code}: {detail}") from None
        raise InvalidInputError(f"{mask_url(url)} refused the holdout rows ({exc.code}): {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ServiceUnavailableError(f"model server unreachable at {mask_url(url)} ({exc})") from None


def _track(url: str, model: str, features: list[list[float]], labels: list[str], *, batch: int,
           api_key: str | None, timeout: float, expect_version: str | None) -> TrackResult:
    predicted: list[str] = []
    versions: set[str] = set()
    for start in range(0, len(features), batch):
        body = _predict(url, model, features[start : start + batch], api_key, timeout)
        predicted += [str(p) for p in body["predictions"]]
        versions.add(str(body.get("version", "")))
    if len(versions) != 1:
        raise InvalidInputError(f"{mask_url(url)} answered from several versions {sorted(versions)} during the replay")
    [version] = versions
    if expect_version is not None and version != expect_version:
        raise InvalidInputError(f"{mask_url(url)} serves {model} v{version}, not the canary v{expect_version}")
    correct = sum(p == t for p, t in zip(predicted, labels, strict=True))
    return TrackResult(url, version, correct / len(labels), len(labels))


def replay(
    settings: PlatformSettings,
    model: str,
    version: int,
    canary_url: str,
    stable_url: str | None = None,
    *,
    api_key: str | None = None,
    batch: int = 64,
    timeout: float = 30.0,
) -> ReplayResult:
    import pandas as pd

    registry = open_registry(settings)
    registry.check_reachable()
    mv = registry.get_version(model, version=version)
    if reg.TAG_HOLDOUT not in (mv.tags or {}):
        raise InvalidInputError(f"{model} v{version} has no labelled holdout rows (tag {reg.TAG_HOLDOUT!r}): "
                                "it was trained before they were stored; retrain it")
    try:
        frame = pd.read_parquet(io.BytesIO(registry.load_run_file(mv.run_id, reg.HOLDOUT_ARTIFACT)))
        config = registry.load_run_json(mv.run_id, "config/effective.json")
    except NotFoundError as exc:
        raise InvalidInputError(str(exc)) from None
    gate = config.get("gate") or {}
    minimum = (gate.get("min") or {}).get(ACCURACY)
    tolerance = (gate.get("tolerance") or {}).get(ACCURACY)
    labels = [str(v) for v in frame.pop(reg.HOLDOUT_TARGET)]
    features = frame.to_numpy(dtype=float).tolist()
    options: dict[str, Any] = {"batch": batch, "api_key": api_key, "timeout": timeout}
    canary = _track(canary_url, model, features, labels, expect_version=str(version), **options)
    stable = _track(stable_url, model, features, labels, expect_version=None, **options) if stable_url else None
    result = ReplayResult(model, str(version), canary, stable, minimum, tolerance)
    if minimum is None:
        result.checks.append((True, "no gate.min.accuracy in the version's config: absolute check skipped"))
    else:
        ok = canary.accuracy >= minimum
        relation = ">=" if ok else "<"
        result.checks.append((ok, f"canary accuracy {canary.accuracy:.4f} {relation} gate minimum {minimum:g}"))
    if stable is None or tolerance is None:
        what = "no stable track given" if stable is None else "no gate.tolerance.accuracy in the version's config"
        result.checks.append((True, f"{what}: comparison with stable skipped"))
    else:
        drop = stable.accuracy - canary.accuracy
        ok = drop <= tolerance
        result.checks.append((ok, f"canary {canary.accuracy:.4f} vs stable v{stable.version} {stable.accuracy:.4f}: "
                                  f"drop {drop:.4f} {'within' if ok else 'beyond'} the tolerance {tolerance:g}"))
    return result

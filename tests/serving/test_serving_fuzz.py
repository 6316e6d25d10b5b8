"""schemathesis against the OpenAPI document of a real `python -m mlops_serving` process, with an
API key, a fixed seed and a bounded number of examples: every operation, schema-valid (positive)
and schema-violating (negative) requests, and not one response >= 500 nor a traceback in the log.

``MLOPS_FUZZ_EXAMPLES`` (default 150) is the examples per operation and generation mode: the 9
operations with parameters or a body get that many in each of the 2 modes. The default keeps
the suite within minutes (~2,700 cases); ``MLOPS_FUZZ_EXAMPLES=600`` makes >= 10,000 cases (and
then asserts it), which takes about a quarter of an hour on 2 busy cores: schemathesis spends
most of it generating the nested request bodies."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .serving_support import CANCER, WINE, Keys, Server, start_server

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the dev extra")
hypothesis = pytest.importorskip("hypothesis")

EXAMPLES = int(os.environ.get("MLOPS_FUZZ_EXAMPLES", "150"))
SEED = 17


@pytest.fixture(scope="module")
def fuzz_server(trained_store: Any, keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("fuzz")
    env = trained_store.env(
        MLOPS_SERVING_MODELS=f"{WINE}:1,{CANCER}@candidate", MLOPS_SERVING_AUTH="api-key",
        MLOPS_SERVING_API_KEYS_FILE=str(keys.file), MLOPS_SERVING_PREDLOG_SAMPLE_RATE="0",
        MLOPS_SERVING_LOG_LEVEL="WARNING",
    )
    started = start_server(workdir, env, key=keys.full)
    yield started
    started.stop()


def test_fuzz_every_operation_no_server_error(fuzz_server: Server) -> None:
    schema = schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")
    headers = {"x-api-key": fuzz_server.key}
    counts: dict[str, int] = {}
    errors: list[str] = []
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in schemathesis.GenerationMode:
            if mode is schemathesis.GenerationMode.NEGATIVE and not _has_inputs(operation):
                continue

            _run(operation, mode, fuzz_server, headers, counts, errors)
    total = sum(counts.values())
    took = time.monotonic() - started
    print(f"\nschemathesis: {total} cases over {len(counts)} operation/mode pairs in {took:.0f}s; "
          f"{len(errors)} responses >= 500")
    assert not errors, "\n".join(errors[:20])
    assert {label.split(" (")[0] for label in counts} >= {"POST /predict", "POST /invocations",
                                                         "POST /v2/models/{name}/infer"}
    if EXAMPLES >= 600:
        assert total >= 10_000, counts
    log = fuzz_server.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-5000:]


def _run(operation: Any, mode: Any, server: Server, headers: dict[str, Any], counts: dict[str, int],
         errors: list[str]) -> None:
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis.errors import Unsatisfiable

    label = f"{operation.label} ({mode.value})"

    @seed(SEED)
    @settings(max_examples=EXAMPLES, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case: Any) -> None:
        response = case.call(base_url=server.url, session=server.session, headers=headers)
        counts[label] = counts.get(label, 0) + 1
        if response.status_code >= 500:
            errors.append(f"{label}: {response.status_code} {response.text[:300]}")

    try:
        call()
        print(f"{label}: {counts.get(label, 0)} cases", flush=True)
    except Unsatisfiable:  # no schema-violating value exists (e.g. a free-form string path parameter)
        counts.setdefault(label, 0)


def _has_inputs(operation: Any) -> bool:
    definition = operation.definition.raw
    return bool(definition.get("parameters") or definition.get("requestBody"))

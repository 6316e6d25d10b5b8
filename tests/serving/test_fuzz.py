"""schemathesis against the OpenAPI document of a real `python -m mlops_serving` process, with an
API key, a fixed seed and a bounded number of examples: every operation, schema-valid (positive)
and schema-violating (negative) requests, at least 10,000 of them, and not one response >= 500
nor a traceback in the log.

``MLOPS_FUZZ_EXAMPLES`` (default 700) is the examples per operation and generation mode; the v2
inference operations, whose nested tensor bodies cost ~75 ms of CPU each to generate (5 times
the others), get half. An operation without inputs, or whose inputs are all enumerated, has fewer
distinct cases. The document names the served models as the values of ``{name}``, so positive
cases reach the models' input parsing instead of a 404. Generating is most of the cost, so the
operation/mode pairs are spread over two processes (one per core): about 250 s of CPU in all.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from support.serving import CANCER, WINE, Keys, Server, start_server

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the dev extra")
hypothesis = pytest.importorskip("hypothesis")

DEFAULT_EXAMPLES = 700
EXAMPLES = int(os.environ.get("MLOPS_FUZZ_EXAMPLES", str(DEFAULT_EXAMPLES)))
COSTLY = "/infer"  # operations (by label) that get half the examples
SEED = 17
PROCESSES = 2


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


@pytest.mark.timeout(1200)  # about 5 minutes on 2 idle cores; a busy machine gets slack, not a flake
def test_fuzz_every_operation_no_server_error(fuzz_server: Server) -> None:
    schema = schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")
    pairs = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in schemathesis.GenerationMode:
            if mode is schemathesis.GenerationMode.POSITIVE or _has_inputs(operation):
                pairs.append((operation.label, mode.value))
    started = time.monotonic()
    pool = concurrent.futures.ProcessPoolExecutor(PROCESSES, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [pool.submit(fuzz_pair, fuzz_server.url, str(fuzz_server.key), label, mode,
                               EXAMPLES // 2 if COSTLY in label else EXAMPLES)
                   for label, mode in pairs]
        results = []
        for future in concurrent.futures.as_completed(futures):
            label, mode, count, pair_statuses, _, seconds, cpu = result = future.result()
            results.append(result)
            print(f"{label} ({mode}): {count} cases in {seconds:.0f}s ({cpu:.0f}s CPU); statuses "
                  + ", ".join(f"{code}: {n}" for code, n in sorted(pair_statuses.items())), flush=True)
    finally:  # a failure or the test's timeout: do not wait for the other pairs
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
    took = time.monotonic() - started
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    for _, _, _, pair_statuses, pair_errors, _, _ in results:
        statuses.update(pair_statuses)
        errors += pair_errors
    total = sum(statuses.values())
    print(f"schemathesis: {total} cases over {len({r[0] for r in results})} operations ({len(results)} "
          f"operation/mode pairs, seed {SEED}, at most {EXAMPLES} examples each) in {took:.0f}s with {PROCESSES} "
          f"processes ({sum(r[6] for r in results):.0f}s CPU in them); statuses "
          + ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items())) + f"; {len(errors)} responses >= 500")
    assert not errors, "\n".join(errors[:20])
    assert {r[0] for r in results if r[2] > 0} >= {"POST /predict", "POST /invocations", "POST /v2/models/{name}/infer"}
    assert statuses[200] > 0, "no case reached a model"
    if EXAMPLES >= DEFAULT_EXAMPLES:
        assert total >= 10_000, statuses
    log = fuzz_server.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-5000:]


@functools.cache
def _schema(url: str) -> Any:
    return schemathesis.openapi.from_url(url + "/openapi.json")


def fuzz_pair(url: str, key: str, label: str, mode_name: str,
              examples: int) -> tuple[str, str, int, dict[int, int], list[str], float, float]:
    """In a worker process: ``examples`` generated cases of one operation in one generation mode,
    with the API key as a fixed header; (label, mode, cases, statuses, descriptions of responses
    >= 500, seconds, CPU seconds of this process)."""
    import requests
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis.errors import Unsatisfiable

    operation = next(r.ok() for r in _schema(url).get_all_operations() if r.ok().label == label)
    mode = schemathesis.GenerationMode(mode_name)
    session = requests.Session()
    statuses: Counter[int] = Counter()
    errors: list[str] = []

    @seed(SEED)
    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode, headers={"x-api-key": key}))
    def call(case: Any) -> None:
        response = case.call(base_url=url, session=session, timeout=30)
        statuses[response.status_code] += 1
        if response.status_code >= 500:
            errors.append(f"{label} ({mode_name}): {response.status_code} {response.text[:300]}\n"
                          f"  reproduce: {case.as_curl_command()}")

    started, cpu = time.monotonic(), time.process_time()
    with contextlib.suppress(Unsatisfiable):  # no schema-violating value exists (e.g. enumerated path only)
        call()
    return (label, mode_name, sum(statuses.values()), dict(statuses), errors, time.monotonic() - started,
            time.process_time() - cpu)


def _has_inputs(operation: Any) -> bool:
    definition = operation.definition.raw
    return bool(definition.get("parameters") or definition.get("requestBody"))

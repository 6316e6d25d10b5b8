"""A hung object store: the real SeaweedFS process frozen (SIGSTOP) while the real server logs predictions.

Then SIGTERM the server. It must stop within its drain budget (not hang on the store), count every
accepted record exactly once as written or dropped, say how many were lost, and, once the store is
thawed (SIGCONT), the store must hold no duplicate row (a timed-out write that landed anyway and
was retried overwrites its own object).
"""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from support.seaweedfs import seaweedfs_s3
from support.serving import WINE, WINE_ROWS, start_server, wait_until

pytestmark = pytest.mark.integration

SHUTDOWN_TIMEOUT_S = 8.0


def _stored_rows(s3: Any, bucket: str) -> list[tuple[str, int]]:
    import pyarrow.parquet as pq

    client = s3.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    rows: list[tuple[str, int]] = []
    for key in keys:
        table = pq.read_table(io.BytesIO(client.get_object(Bucket=bucket, Key=key)["Body"].read()))
        rows += list(zip(table.column("request_id").to_pylist(), table.column("row").to_pylist(), strict=True))
    return rows


def _written(server: Any) -> float:
    """The server's own count of prediction-log records written (its /metrics)."""
    from prometheus_client.parser import text_string_to_metric_families

    from mlops_platform.metric_names import SERVING_PREDLOG_WRITTEN

    name = SERVING_PREDLOG_WRITTEN.name
    return sum(sample.value for family in text_string_to_metric_families(server.get("/metrics").text)
               for sample in family.samples if sample.name == name)


def test_frozen_store_neither_hangs_shutdown_nor_lies(trained_store: Any, tmp_path: Path) -> None:
    with seaweedfs_s3(tmp_path / "s3") as s3:
        assert s3.pid is not None
        s3.make_bucket("predictions")
        env = trained_store.env(
            **s3.env(), MLOPS_STORE_URI="s3://predictions/prod", MLOPS_SERVING_MODELS=f"{WINE}:1",
            MLOPS_SERVING_AUTH="off", MLOPS_SERVING_PREDLOG_FLUSH_INTERVAL_S="0.2",
            MLOPS_SERVING_PREDLOG_WRITE_TIMEOUT_S="3", MLOPS_SERVING_PREDLOG_SHUTDOWN_FLUSH_S="4",
            MLOPS_SERVING_SHUTDOWN_TIMEOUT_S=str(SHUTDOWN_TIMEOUT_S),
        )
        server = start_server(tmp_path, env)
        frozen = False
        try:
            sent = 0
            for i in range(20):  # the store is up: these are written
                assert server.post("/predict", json={"features": WINE_ROWS},
                                   headers={"X-Request-ID": f"up-{i}"}).status_code == 200
                sent += len(WINE_ROWS)
            # Freeze only once the server has written those (its first write opens the S3 client, which
            # takes more than a flush interval on a loaded machine).
            wait_until(lambda: _written(server) >= sent, 60, "the server writing the records sent before the freeze")
            os.kill(s3.pid, signal.SIGSTOP)
            frozen = True
            for i in range(300):  # the store hangs: writes time out, are retried, then dropped
                assert server.post("/predict", json={"features": WINE_ROWS},
                                   headers={"X-Request-ID": f"frozen-{i}"}).status_code == 200
                sent += len(WINE_ROWS)
                time.sleep(0.01)
            started = time.monotonic()
            server.stop(timeout=120)
            shutdown_s = time.monotonic() - started
        finally:
            if frozen:
                os.kill(s3.pid, signal.SIGCONT)
            server.stop()
        print(f"shutdown with the store frozen: {shutdown_s:.2f}s (budget {SHUTDOWN_TIMEOUT_S:g}s), {sent} accepted")
        closed = [e for e in server.logs() if "predlog_accepted" in e]
        assert len(closed) == 1, server.log.read_text()[-3000:]
        totals = closed[0]
        print(f"accepted {totals['predlog_accepted']}, written {totals['predlog_written']}, "
              f"dropped {totals['predlog_dropped']}: {totals['message']}")
        assert shutdown_s < SHUTDOWN_TIMEOUT_S + 2, f"SIGTERM took {shutdown_s:.1f}s"
        assert server.stopped_cleanly()
        assert totals["predlog_accepted"] == sent
        assert totals["predlog_written"] + totals["predlog_dropped"] == sent
        assert totals["predlog_written"] >= 20 * len(WINE_ROWS)
        assert totals["predlog_dropped"] > 0
        assert totals["level"] == "ERROR" and f"{totals['predlog_lost_at_shutdown']} lost" in totals["message"]

        # thawed: writes that were in the frozen server's socket buffer land now; none twice
        time.sleep(3)
        stored = wait_until(lambda: _stored_rows(s3, "predictions"), 30, "the stored records")
        assert len(stored) == len(set(stored)), f"{len(stored) - len(set(stored))} duplicate rows"
        assert totals["predlog_written"] <= len(stored) <= sent

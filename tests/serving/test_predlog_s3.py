"""The prediction log on real S3 (SeaweedFS), read back with the drift job's reader."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.seaweedfs import S3
from support.serving import WINE, WINE_ROWS, start_server, wait_until

pytestmark = pytest.mark.integration


def test_prediction_log_on_s3(trained_store: Any, s3: S3, tmp_path: Path) -> None:
    from mlops_platform.prediction_log import RECORD_SCHEMA_VERSION, read_records
    from mlops_platform.settings import PlatformSettings

    bucket = s3.new_bucket("predictions")
    store = f"s3://{bucket}/staging"
    env = trained_store.env(
        **s3.env(), MLOPS_STORE_URI=store, MLOPS_SERVING_MODELS=f"{WINE}:1", MLOPS_SERVING_AUTH="off",
        MLOPS_SERVING_PREDLOG_FLUSH_INTERVAL_S="0.2",
    )
    server = start_server(tmp_path, env)
    try:
        ids = [f"s3-{i}" for i in range(5)]
        for rid in ids:
            assert server.post("/predict", json={"features": WINE_ROWS},
                               headers={"X-Request-ID": rid}).status_code == 200
        settings = PlatformSettings(
            home=trained_store.home, s3_endpoint_url=s3.endpoint_url, aws_access_key_id=s3.access_key,
            aws_secret_access_key=s3.secret_key, aws_region=s3.region,
        )
        now = datetime.now(UTC)

        def logged() -> Any:
            frame = read_records(store, settings, WINE, "1", now - timedelta(hours=1), now + timedelta(hours=1))
            return frame if len(frame) == 3 * len(ids) else None

        frame = wait_until(logged, 60, "the records on S3")
    finally:
        server.stop()
    assert server.stopped_cleanly()
    assert sorted(set(frame["request_id"])) == ids
    assert frame[frame["request_id"] == "s3-0"]["prediction"].tolist() == ["0", "1", "2"]
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys and all(k.startswith(f"staging/predictions/model={WINE}/version=1/date=") for k in keys)
    assert all("/hour=" in k and k.endswith(".parquet") for k in keys)
    import io

    import pyarrow.parquet as pq

    body = s3.client().get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    metadata = pq.read_schema(io.BytesIO(body)).metadata
    assert metadata[b"mlops.schema_version"] == str(RECORD_SCHEMA_VERSION).encode()

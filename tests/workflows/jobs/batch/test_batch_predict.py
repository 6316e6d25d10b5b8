"""`mlops batch-predict`: sharding, chunking, rejects, overwrite, commit on completion, S3, metrics."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from support.project import EmbeddedStore, run_mlops

from mlops_platform.errors import InvalidInputError
from mlops_platform.tables import Shard
from mlops_workflows.jobs.batch.job import BatchRequest, run_batch
from mlops_workflows.jobs.batch.settings import BatchSettings

pytestmark = pytest.mark.integration

MODEL = "wine-classifier"


def wine_rows(rows: int, seed: int) -> pd.DataFrame:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.drop(columns="target")
    frame.columns = [str(c).replace("/", "_") for c in frame.columns]
    sample = frame.sample(rows, replace=True, random_state=seed).reset_index(drop=True)
    sample.insert(0, "id", [f"row-{seed}-{i:06d}" for i in range(rows)])
    return sample


@pytest.fixture(scope="module")
def registry(trained_store: EmbeddedStore) -> Any:
    from mlops_platform.registry import Registry

    return Registry(BatchSettings(MLOPS_HOME=str(trained_store.home)))


@pytest.fixture(scope="module")
def estimator(registry: Any) -> Any:
    return registry.load_sklearn_model(MODEL, 1)


@pytest.fixture
def mixed_input(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """Two Parquet files (row groups of 70 rows) and a CSV file: 670 rows, 12 units."""
    folder = tmp_path / "input"
    (folder / "day=1").mkdir(parents=True)
    parts = [wine_rows(300, 1), wine_rows(250, 2), wine_rows(120, 3)]
    parts[0].to_parquet(folder / "day=1" / "a.parquet", row_group_size=70)
    parts[1].to_parquet(folder / "b.parquet", row_group_size=70)
    parts[2].to_csv(folder / "c.csv", index=False)
    (folder / "_ignored.parquet").write_bytes(b"not even parquet")  # underscore: not input
    return folder, pd.concat(parts, ignore_index=True)


def settings_for(store: EmbeddedStore, **extra: Any) -> BatchSettings:
    return BatchSettings(MLOPS_HOME=str(store.home), **extra)


def test_shards_cover_the_input_exactly_once_in_chunks(
    trained_store: EmbeddedStore, registry: Any, estimator: Any, mixed_input: tuple[Path, pd.DataFrame],
    tmp_path: Path,
) -> None:
    folder, expected = mixed_input
    features = [c for c in expected.columns if c != "id"]
    settings = settings_for(trained_store)
    for count in range(1, 5):
        output = tmp_path / f"out-{count}"
        per_shard = []
        for index in range(1, count + 1):
            request = BatchRequest(model=MODEL, version=1, input_uri=str(folder), output_uri=str(output),
                                   id_column="id", shard=Shard(index, count), chunk_rows=50)
            result = run_batch(settings, request, registry=registry)
            assert result.rows_rejected == 0
            per_shard.append(result.rows_predicted)
        assert sorted(p.name for p in output.iterdir()) == [
            f"part-{i:05d}-of-{count:05d}.parquet" for i in range(1, count + 1)
        ]
        scored = pd.read_parquet(output)
        assert sum(per_shard) == len(scored) == len(expected)
        assert sorted(scored["id"]) == sorted(expected["id"])  # every row once
        assert all(rows > 0 for rows in per_shard)

    scored = pd.read_parquet(tmp_path / "out-1").set_index("id").loc[expected["id"]]
    raw = estimator.predict(expected[features].to_numpy(dtype=np.float64))
    assert (scored["prediction"].to_numpy() == raw).all()
    probabilities = estimator.predict_proba(expected[features].to_numpy(dtype=np.float64))
    assert np.allclose(scored[["probability_0", "probability_1", "probability_2"]].to_numpy(), probabilities)
    assert set(scored["model"]) == {MODEL} and set(scored["model_version"]) == {"1"}


def test_invalid_rows_are_counted_rejected_or_fail_the_job(
    trained_store: EmbeddedStore, registry: Any, tmp_path: Path
) -> None:
    frame = wine_rows(200, 4).astype({"alcohol": object})
    frame.loc[3, "alcohol"] = "twelve"
    frame.loc[7, "malic_acid"] = np.nan
    frame.loc[9, "hue"] = np.inf
    frame.to_csv(tmp_path / "in.csv", index=False)
    settings = settings_for(trained_store)

    request = BatchRequest(model=MODEL, version=1, input_uri=str(tmp_path / "in.csv"),
                           output_uri=str(tmp_path / "out"), id_column="id", chunk_rows=64)
    result = run_batch(settings, request, registry=registry)
    assert (result.rows_read, result.rows_predicted, result.rows_rejected) == (200, 197, 3)
    # rejects beside the output, not in it: a read of the output folder gets exactly the scored rows
    scored = pd.read_parquet(tmp_path / "out")
    assert len(scored) == 197 and scored["prediction"].notna().all()
    assert sorted(scored["id"]) == sorted(set(frame["id"]) - {"row-4-000003", "row-4-000007", "row-4-000009"})
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["part-00001-of-00001.parquet"]
    rejects = pd.read_parquet(tmp_path / "out.rejects")
    assert sorted(p.name for p in (tmp_path / "out.rejects").iterdir()) == ["rejects-00001-of-00001.parquet"]
    assert rejects["id"].tolist() == ["row-4-000003", "row-4-000007", "row-4-000009"]
    assert rejects["alcohol"][0] == "twelve"
    assert rejects["reject_reason"].tolist() == [
        "alcohol: missing or not a number", "malic_acid: missing or not a number", "hue: not finite"
    ]
    assert len(pd.read_parquet(tmp_path / "out" / "part-00001-of-00001.parquet")) == 197

    failing = BatchRequest(model=MODEL, version=1, input_uri=str(tmp_path / "in.csv"),
                           output_uri=str(tmp_path / "strict"), invalid_rows="fail")
    with pytest.raises(InvalidInputError, match="do not match the signature"):
        run_batch(settings, failing, registry=registry)
    assert not list((tmp_path / "strict").glob("*.parquet"))


def test_existing_output_needs_overwrite(trained_store: EmbeddedStore, registry: Any, tmp_path: Path) -> None:
    wine_rows(50, 5).to_parquet(tmp_path / "in.parquet")
    settings = settings_for(trained_store)
    request = BatchRequest(model=MODEL, version=1, input_uri=str(tmp_path / "in.parquet"),
                           output_uri=str(tmp_path / "out"), id_column="id")
    run_batch(settings, request, registry=registry)
    part = tmp_path / "out" / "part-00001-of-00001.parquet"
    before = part.stat().st_mtime_ns

    again = run_mlops("batch-predict", MODEL, "--version", "1", "--input", str(tmp_path / "in.parquet"),
                      "--output", str(tmp_path / "out"), cwd=trained_store.workdir, env=trained_store.env())
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert part.stat().st_mtime_ns == before

    wine_rows(80, 6).to_parquet(tmp_path / "in.parquet")
    run_batch(settings, BatchRequest(**{**request.__dict__, "overwrite": True}), registry=registry)
    assert len(pd.read_parquet(part)) == 80
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [part.name]  # no staging left


def test_corrupt_or_missing_input_fails_without_output(
    trained_store: EmbeddedStore, registry: Any, mixed_input: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    folder, _ = mixed_input
    (folder / "d.parquet").write_bytes(b"PAR1 truncated")
    wine_rows(10, 7).drop(columns="hue").to_parquet(tmp_path / "nohue.parquet")
    settings = settings_for(trained_store)
    output = tmp_path / "out"
    for source, message in ((folder, "d.parquet"), (tmp_path / "nowhere", "nowhere"),
                            (tmp_path / "nohue.parquet", "hue")):
        request = BatchRequest(model=MODEL, version=1, input_uri=str(source), output_uri=str(output))
        with pytest.raises(InvalidInputError, match=message):
            run_batch(settings, request, registry=registry)
    assert not output.exists() or not list(output.rglob("*.parquet"))


def test_a_killed_run_commits_nothing(trained_store: EmbeddedStore, tmp_path: Path) -> None:
    big = wine_rows(400_000, 8)
    big.to_parquet(tmp_path / "big.parquet", row_group_size=20_000)
    output = tmp_path / "out"
    env = trained_store.env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlops_workflows.cli", "batch-predict", MODEL, "--version", "1",
         "--input", str(tmp_path / "big.parquet"), "--output", str(output), "--chunk-rows", "5000"],
        cwd=trained_store.workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    from support.prometheus import wait_until

    def staged_rows_written() -> bool:
        staged = list(output.glob("_temporary/*/part-*.parquet"))
        return bool(staged) and staged[0].stat().st_size > 100_000

    try:
        wait_until(lambda: staged_rows_written() or proc.poll() is not None, timeout=120,
                   what="the batch job to write its first chunks")
        assert proc.poll() is None, "the job ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not list(output.glob("part-*")) and not list(output.parent.glob(f"{output.name}.rejects/*"))
    assert pd.read_parquet(output).empty if list(output.glob("*.parquet")) else True  # readers see no rows


def test_s3_input_output_and_pushed_metrics(trained_store: EmbeddedStore, s3: Any, tmp_path: Path) -> None:
    from support.prometheus import pushgateway_server

    client = s3.client()
    s3.make_bucket("batch")
    good, bad = wine_rows(300, 9), wine_rows(40, 10)
    bad.loc[0, "ash"] = np.nan
    for key, frame, kind in (("in/a.parquet", good, "parquet"), ("in/sub/b.csv", bad, "csv")):
        buffer = io.BytesIO()
        (frame.to_parquet(buffer, row_group_size=100) if kind == "parquet" else
         buffer.write(frame.to_csv(index=False).encode()))
        client.put_object(Bucket="batch", Key=key, Body=buffer.getvalue())

    with pushgateway_server(tmp_path / "pgw") as gateway:
        env = trained_store.env(MLOPS_PUSHGATEWAY_URL=gateway.url, **s3.env())
        shards = []
        for index in (1, 2):
            result = run_mlops("batch-predict", MODEL, "--version", "1", "--input", "s3://batch/in",
                               "--output", "s3://batch/out", "--id-column", "id", "--shard", f"{index}/2",
                               cwd=trained_store.workdir, env=env)
            assert result.returncode == 0, result.stdout + result.stderr
            shards.append(result.stdout)
        keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="batch", Prefix="out/")["Contents"])
        assert "out/part-00001-of-00002.parquet" in keys and "out/part-00002-of-00002.parquet" in keys
        assert not [k for k in keys if "_temporary" in k]
        scored = pd.concat(
            pd.read_parquet(io.BytesIO(client.get_object(Bucket="batch", Key=k)["Body"].read()))
            for k in keys if k.startswith("out/part-")
        )
        assert sorted(scored["id"]) == sorted([*good["id"], *bad["id"][1:]])
        assert not [k for k in keys if "rejects" in k]  # beside the output, not in it
        rejects = [o["Key"] for o in client.list_objects_v2(Bucket="batch", Prefix="out.rejects/")["Contents"]]
        assert len(rejects) == 1 and rejects[0].startswith("out.rejects/rejects-")

        metrics = gateway.metrics_text()
        assert 'mlops_batch_rows{instance="",job="mlops-batch-predict",model="wine-classifier",' in metrics
        failed_series = (
            'mlops_batch_failed{instance="",job="mlops-batch-predict",model="wine-classifier",shard="1-of-2",'
        )
        assert failed_series + 'version="1"} 0' in metrics

        failed = run_mlops("batch-predict", MODEL, "--version", "1", "--input", "s3://batch/missing",
                           "--output", "s3://batch/out2", "--shard", "1/2", cwd=trained_store.workdir, env=env)
        assert failed.returncode == 2
        metrics = gateway.metrics_text()
        assert failed_series + 'version="1"} 1' in metrics
        assert "mlops_batch_last_success_timestamp_seconds{" in metrics  # the last success is kept

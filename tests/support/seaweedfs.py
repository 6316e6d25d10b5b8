"""A SeaweedFS S3 gateway (``weed server``: master, volume, filer, S3) on free loopback ports."""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.procs import LOOPBACK, free_ports, managed, require_binary, spawn, startup_error


@dataclass(frozen=True)
class S3:
    """Credentials and endpoint of an S3-compatible object store."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    pid: int | None = None  # the ``weed`` process, for fault injection (SIGSTOP/SIGCONT)

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client (path-style addressing) for this endpoint; ``config`` goes to botocore."""
        import boto3
        from botocore.config import Config

        options: dict[str, Any] = {"s3": {"addressing_style": "path"}, "signature_version": "s3v4"}
        options.update(config)
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(**options),
        )

    def make_bucket(self, name: str) -> None:
        """Create bucket ``name`` unless it exists already."""
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        except client.exceptions.BucketAlreadyExists:
            pass

    def new_bucket(self, prefix: str) -> str:
        """Create a bucket of its own for one test (``<prefix>-<random>``) and return its name: tests
        sharing the session's store never see each other's objects."""
        name = f"{prefix}-{secrets.token_hex(4)}"
        self.make_bucket(name)
        return name

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3 and MLflow at this store."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url,
        }


def _wait_for_s3(s3: S3, proc: subprocess.Popen[Any], log: Path, timeout: float) -> None:
    client = s3.client(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1})
    deadline = time.monotonic() + timeout
    last_error = "no attempt made"
    while True:
        if proc.poll() is not None:
            raise startup_error("SeaweedFS died during startup", log, proc)
        try:
            client.list_buckets()
            return
        except Exception as exc:  # any botocore/connection error means "not ready yet"
            last_error = repr(exc)
        if time.monotonic() >= deadline:
            raise startup_error(
                f"SeaweedFS S3 at {s3.endpoint_url} not ready within {timeout:.0f}s (last: {last_error})", log, proc
            )
        time.sleep(0.2)


@contextlib.contextmanager
def seaweedfs_s3(workdir: Path) -> Iterator[S3]:
    """A SeaweedFS ``weed server`` (master, volume, filer, S3 gateway) on free loopback ports.

    Data and ``seaweedfs.log`` live in ``workdir``; the S3 gateway requires the returned credentials.
    """
    weed = require_binary("weed")
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "seaweedfs-data"
    data.mkdir(exist_ok=True)
    log = workdir / "seaweedfs.log"
    names = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    s3 = S3(
        endpoint_url=f"http://{LOOPBACK}:{ports['s3']}",
        access_key="mlops-" + secrets.token_hex(6),
        secret_key=secrets.token_hex(20),
    )
    config = workdir / "seaweedfs-s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "mlops-test",
                        "credentials": [{"accessKey": s3.access_key, "secretKey": s3.secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    config.chmod(0o600)

    argv = [
        weed,
        "-logtostderr",  # glog would otherwise write files into /tmp
        "server",
        f"-dir={data}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        "-master.volumeSizeLimitMB=64",
        "-master.telemetry=false",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        "-volume.max=32",
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={workdir / 's3.sock'}",
        f"-s3.config={config}",
    ]
    env = dict(os.environ)
    # One volume per bucket (collection) instead of 7, so a small -volume.max serves many buckets.
    env["WEED_MASTER_VOLUME_GROWTH_COPY_1"] = "1"
    proc = spawn(argv, log, cwd=workdir, env=env)
    try:
        # The filer's graceful gRPC stop waits 15 s for its subscribers; the data is throwaway anyway.
        with managed(proc, grace=1):
            _wait_for_s3(s3, proc, log, timeout=60)
            yield dataclasses.replace(s3, pid=proc.pid)
    finally:
        # weed also listens on /tmp/seaweedfs-<component>-grpc-<port>.sock and a SIGKILL leaves them.
        for port in ports.values():
            for sock in glob.glob(f"/tmp/seaweedfs-*-grpc-{port}.sock"):
                with contextlib.suppress(OSError):
                    os.unlink(sock)

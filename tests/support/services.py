"""Start real server processes (PostgreSQL, SeaweedFS S3, MLflow) for tests on free loopback ports.

Every helper binds to 127.0.0.1 only, writes the process output to a log file in the given working
directory, raises ``RuntimeError`` with the last lines of that log when the process does not come up,
and kills the whole process group on teardown, also when the test failed.

A missing binary skips the test, or fails it when ``MLOPS_REQUIRE_INTEGRATION=1``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import importlib.util
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

__all__ = [
    "S3",
    "MlflowServer",
    "Postgres",
    "free_port",
    "integration_required",
    "mlflow_server",
    "postgres_server",
    "require_binary",
    "seaweedfs_s3",
    "wait_for_http",
]

LOOPBACK = "127.0.0.1"
LOG_TAIL_LINES = 40

# The log file of each process started here, so that wait_for_http can show its tail.
_LOGS: weakref.WeakKeyDictionary[subprocess.Popen[Any], Path] = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------------------------------- basics


def integration_required() -> bool:
    """True when a missing service binary must fail the test instead of skipping it."""
    return os.environ.get("MLOPS_REQUIRE_INTEGRATION") == "1"


def _missing(what: str) -> NoReturn:
    message = f"{what} (set MLOPS_REQUIRE_INTEGRATION=1 to make this a failure)"
    if integration_required():
        pytest.fail(what, pytrace=False)
    pytest.skip(message)


def _find_executable(name: str, extra_dirs: Sequence[Path] = ()) -> str | None:
    """``name`` next to ``sys.executable`` (the venv's bin dir), on PATH, or in ``extra_dirs``."""
    candidates = [Path(sys.executable).parent / name]
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    candidates.extend(Path(d) / name for d in extra_dirs)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate.absolute())
    return None


def require_binary(name: str) -> str:
    """The absolute path of executable ``name``; skips (or fails under integration) when missing."""
    found = _find_executable(name)
    if found is None:
        where = Path(sys.executable).parent
        _missing(f"integration test needs {name}, but {name} not installed (not on PATH nor in {where})")
    return found


def _postgres_binary(name: str) -> str:
    """A PostgreSQL server binary: on PATH, or in Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    version_dirs = sorted(
        (Path(d) for d in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda d: [int(p) if p.isdigit() else 0 for p in re.split(r"\D+", d.parent.name)],
        reverse=True,
    )
    found = _find_executable(name, version_dirs)
    if found is None:
        _missing(
            f"integration test needs PostgreSQL, but {name} not installed "
            "(not on PATH nor in /usr/lib/postgresql/*/bin; apt-get install postgresql)"
        )
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    return _free_ports(1)[0]


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all sockets are held open until every port is picked)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _log_tail(log: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    if log is None:
        return "(no log file)"
    try:
        text = log.read_text(errors="replace")
    except OSError as exc:
        return f"(log {log} unreadable: {exc})"
    tail = "\n".join(text.splitlines()[-lines:])
    return f"--- last {lines} lines of {log} ---\n{tail}"


def _startup_error(what: str, log: Path | None, proc: subprocess.Popen[Any] | None = None) -> RuntimeError:
    status = ""
    if proc is not None and proc.poll() is not None:
        status = f" (process exited with code {proc.returncode})"
    return RuntimeError(f"{what}{status}\n{_log_tail(log)}")


_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_for_http(
    url: str,
    timeout: float,
    proc: subprocess.Popen[Any] | None = None,
    log: Path | None = None,
) -> None:
    """Poll ``url`` until it gives any HTTP answer below 500.

    Raises ``RuntimeError`` with the tail of the process log (``log``, or the one the process was
    started with here) when ``proc`` exits first or ``timeout`` seconds pass.
    """
    if log is None and proc is not None:
        log = _LOGS.get(proc)
    deadline = time.monotonic() + timeout
    last_error = "no attempt made"
    while True:
        if proc is not None and proc.poll() is not None:
            raise _startup_error(f"process serving {url} died before answering", log, proc)
        try:
            with _NO_PROXY_OPENER.open(url, timeout=5) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (OSError, ValueError) as exc:
            status = 0
            last_error = repr(exc)
        if 0 < status < 500:
            return
        if status:
            last_error = f"HTTP {status}"
        if time.monotonic() >= deadline:
            raise _startup_error(f"{url} did not answer within {timeout:.0f}s (last: {last_error})", log, proc)
        time.sleep(0.2)


# ------------------------------------------------------------------------------------------ processes


def _spawn(
    argv: Sequence[str], log: Path, *, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group, stdout and stderr appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _LOGS[proc] = log
    return proc


def _kill_group(proc: subprocess.Popen[Any], grace: float) -> None:
    """SIGTERM the process group of ``proc``, SIGKILL whatever is left after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    # Children (uvicorn workers, ...) may outlive the leader: kill the group in any case.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


@contextlib.contextmanager
def _managed(proc: subprocess.Popen[Any], grace: float) -> Iterator[subprocess.Popen[Any]]:
    try:
        yield proc
    finally:
        _kill_group(proc, grace)


# ------------------------------------------------------------------------------------------- Postgres


@dataclass(frozen=True)
class Postgres:
    """A running throwaway PostgreSQL cluster, reachable by password over TCP on 127.0.0.1."""

    url: str
    port: int
    user: str
    password: str

    def database_url(self, name: str) -> str:
        return f"postgresql://{self.user}:{self.password}@{LOOPBACK}:{self.port}/{name}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its URL."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name):
            raise ValueError(f"unsafe database name {name!r}")
        import psycopg2

        conn = psycopg2.connect(self.url, connect_timeout=10)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.database_url(name)


def _service_account() -> tuple[str, int, int]:
    """The unprivileged user that runs PostgreSQL when we are root: postgres, else nobody."""
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return name, entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root, but neither user 'postgres' nor 'nobody' exists to run PostgreSQL")


def _world_traversable_tmp() -> str:
    """A temp parent directory that another user can traverse (pytest's own tmp dirs are 0700)."""
    for candidate in (tempfile.gettempdir(), "/tmp", "/var/tmp"):
        with contextlib.suppress(OSError):
            if os.stat(candidate).st_mode & stat.S_IXOTH:
                return candidate
    return tempfile.gettempdir()


def _run_logged(argv: Sequence[str], log: Path, *, cwd: Path, timeout: float, what: str) -> None:
    with log.open("ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            # The postmaster inherits this file as its stdout/stderr (pg_ctl start without -l).
            result = subprocess.run(
                list(argv), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise _startup_error(f"{what} timed out after {timeout:.0f}s", log) from None
    if result.returncode != 0:
        raise _startup_error(f"{what} failed with exit code {result.returncode}", log)


@contextlib.contextmanager
def postgres_server(workdir: Path) -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster (initdb + pg_ctl) on a free loopback port.

    The log is ``workdir/postgres.log``. As root, the cluster runs as user ``postgres`` (or ``nobody``)
    via ``runuser``, in a fresh directory under the system temp dir that this user can reach.
    """
    initdb = _postgres_binary("initdb")
    pg_ctl = _postgres_binary("pg_ctl")
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "postgres.log"

    as_root = os.geteuid() == 0
    prefix: list[str] = []
    if as_root:
        account, uid, gid = _service_account()
        runuser = _find_executable("runuser", [Path("/usr/sbin"), Path("/sbin")])
        if runuser is None:
            _missing("integration test runs as root and needs runuser (util-linux) to start PostgreSQL")
        prefix = [runuser, "-u", account, "--"]
        base = Path(tempfile.mkdtemp(prefix="pgtest-", dir=_world_traversable_tmp()))
        os.chown(base, uid, gid)
    else:
        base = workdir / "postgres"
        base.mkdir(parents=True, exist_ok=True)
    data = base / "data"
    socket_dir = base
    user = "mlops"
    password = secrets.token_hex(16)
    port = free_port()

    started = False
    try:
        pwfile = base / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if as_root:
            os.chown(pwfile, uid, gid)
        _run_logged(
            [
                *prefix,
                initdb,
                "-D",
                str(data),
                "-U",
                user,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            log,
            cwd=base,
            timeout=120,
            what="initdb",
        )
        pwfile.unlink()
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# throwaway test cluster\n"
                f"listen_addresses = '{LOOPBACK}'\n"
                f"port = {port}\n"
                f"unix_socket_directories = '{socket_dir}'\n"
                "password_encryption = 'scram-sha-256'\n"
                "fsync = off\n"
                "synchronous_commit = off\n"
                "full_page_writes = off\n"
                "shared_buffers = 32MB\n"
                "max_connections = 100\n"
                "logging_collector = off\n"
            )
        started = True
        _run_logged(
            [*prefix, pg_ctl, "start", "-D", str(data), "-w", "-t", "60"],
            log,
            cwd=base,
            timeout=90,
            what="pg_ctl start",
        )
        yield Postgres(
            url=f"postgresql://{user}:{password}@{LOOPBACK}:{port}/postgres",
            port=port,
            user=user,
            password=password,
        )
    finally:
        try:
            if started:
                _stop_postgres(prefix, pg_ctl, data, base, log)
        finally:
            if as_root:
                shutil.rmtree(base, ignore_errors=True)


def _stop_postgres(prefix: Sequence[str], pg_ctl: str, data: Path, base: Path, log: Path) -> None:
    pid_file = data / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        pid = None
    if pid is None:
        return
    with log.open("ab") as out:
        try:
            result = subprocess.run(
                [*prefix, pg_ctl, "stop", "-D", str(data), "-m", "fast", "-w", "-t", "30"],
                cwd=base,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=45,
            )
            stopped = result.returncode == 0
        except subprocess.TimeoutExpired:
            stopped = False
    if not stopped:
        # pg_ctl detaches the postmaster into its own session: kill it by pid.
        for sig in (signal.SIGQUIT, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
            time.sleep(1)


# ----------------------------------------------------------------------------------------- SeaweedFS


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
            raise _startup_error("SeaweedFS died during startup", log, proc)
        try:
            client.list_buckets()
            return
        except Exception as exc:  # any botocore/connection error means "not ready yet"
            last_error = repr(exc)
        if time.monotonic() >= deadline:
            raise _startup_error(
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
    ports = dict(zip(names, _free_ports(len(names)), strict=True))
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
    proc = _spawn(argv, log, cwd=workdir, env=env)
    try:
        # The filer's graceful gRPC stop waits 15 s for its subscribers; the data is throwaway anyway.
        with _managed(proc, grace=1):
            _wait_for_s3(s3, proc, log, timeout=60)
            yield dataclasses.replace(s3, pid=proc.pid)
    finally:
        # weed also listens on /tmp/seaweedfs-<component>-grpc-<port>.sock and a SIGKILL leaves them.
        for port in ports.values():
            for sock in glob.glob(f"/tmp/seaweedfs-*-grpc-{port}.sock"):
                with contextlib.suppress(OSError):
                    os.unlink(sock)


# -------------------------------------------------------------------------------------------- MLflow


@dataclass(frozen=True)
class MlflowServer:
    """A running MLflow tracking server with a SQL backend store and proxied S3 artifacts."""

    tracking_uri: str
    artifact_bucket: str
    s3: S3
    backend_uri: str


def _sqlalchemy_url(uri: str) -> str:
    """A libpq-style ``postgresql://`` URL with the driver SQLAlchemy should use made explicit.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3; only psycopg2 may be installed.
    """
    for scheme in ("postgresql://", "postgres://"):
        if uri.startswith(scheme) and importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + uri.removeprefix(scheme)
    return uri


@contextlib.contextmanager
def mlflow_server(
    workdir: Path,
    backend_uri: str,
    s3: S3,
    bucket: str = "mlflow",
    *,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[MlflowServer]:
    """``mlflow server`` on a free loopback port: ``backend_uri`` store, artifacts proxied to ``s3://bucket/artifacts``.

    A bare ``postgresql://`` ``backend_uri`` is handed to the server as ``postgresql+psycopg2://``
    (``MlflowServer.backend_uri`` keeps the URL as given, usable with ``psycopg2.connect``).
    Creates ``bucket`` first, logs to ``workdir/mlflow-server.log`` and waits (up to 120 s, the
    database migrations run at startup) for ``GET /health``.
    """
    mlflow = require_binary("mlflow")
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "mlflow-server.log"
    s3.make_bucket(bucket)
    port = free_port()
    argv = [
        mlflow,
        "server",
        "--backend-store-uri",
        _sqlalchemy_url(backend_uri),
        "--serve-artifacts",
        "--artifacts-destination",
        f"s3://{bucket}/artifacts",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--workers",
        "1",
        "--allowed-hosts",
        f"{LOOPBACK}:{port},localhost:{port},{LOOPBACK},localhost",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    env.update(s3.env())
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            # No huey job-runner processes: tests need the tracking API only.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
    )
    if extra_env:
        env.update(extra_env)
    proc = _spawn(argv, log, cwd=workdir, env=env)
    tracking_uri = f"http://{LOOPBACK}:{port}"
    with _managed(proc, grace=10):
        wait_for_http(f"{tracking_uri}/health", timeout=120, proc=proc, log=log)
        yield MlflowServer(tracking_uri=tracking_uri, artifact_bucket=bucket, s3=s3, backend_uri=backend_uri)


# ------------------------------------------------------------------------------------ OCI registry


@contextlib.contextmanager
def oci_registry(workdir: Path) -> Iterator[str]:
    """Debian's ``docker-registry`` (CNCF Distribution) on loopback, storage under ``workdir``:
    yields its ``host:port`` (plain HTTP: push with ``--tls-verify=false``)."""
    binary = require_binary("docker-registry")
    port = free_port()
    storage = workdir / "registry"
    storage.mkdir(parents=True, exist_ok=True)
    config = workdir / "registry.yml"
    config.write_text(json.dumps({
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": False}},
        "http": {"addr": f"{LOOPBACK}:{port}"},
    }))
    log = workdir / "registry.log"
    proc = _spawn([binary, "serve", str(config)], log, cwd=workdir)
    with _managed(proc, grace=10):
        wait_for_http(f"http://{LOOPBACK}:{port}/v2/", timeout=60, proc=proc, log=log)
        yield f"{LOOPBACK}:{port}"

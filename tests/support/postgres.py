"""A throwaway PostgreSQL cluster (initdb + pg_ctl) on a free loopback port."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from support.procs import LOOPBACK, find_executable, free_port, missing, startup_error


def _postgres_binary(name: str) -> str:
    """A PostgreSQL server binary: on PATH, or in Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    version_dirs = sorted(
        (Path(d) for d in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda d: [int(p) if p.isdigit() else 0 for p in re.split(r"\D+", d.parent.name)],
        reverse=True,
    )
    found = find_executable(name, version_dirs)
    if found is None:
        missing(
            f"integration test needs PostgreSQL, but {name} not installed "
            "(not on PATH nor in /usr/lib/postgresql/*/bin; apt-get install postgresql)"
        )
    return found


@dataclass(frozen=True)
class Postgres:
    """A running throwaway PostgreSQL cluster, reachable by password over TCP on 127.0.0.1."""

    url: str
    port: int
    user: str
    password: str

    def database_url(self, name: str) -> str:
        return f"postgresql://{self.user}:{self.password}@{LOOPBACK}:{self.port}/{name}"

    def new_database(self, prefix: str) -> str:
        """Create a database of its own for one test (``<prefix>_<random>``) and return its URL: tests
        sharing the session's cluster never see each other's tables."""
        return self.create_database(f"{prefix}_{secrets.token_hex(4)}")

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
            raise startup_error(f"{what} timed out after {timeout:.0f}s", log) from None
    if result.returncode != 0:
        raise startup_error(f"{what} failed with exit code {result.returncode}", log)


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
        runuser = find_executable("runuser", [Path("/usr/sbin"), Path("/sbin")])
        if runuser is None:
            missing("integration test runs as root and needs runuser (util-linux) to start PostgreSQL")
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

"""Process tools of the service helpers: free loopback ports, binaries (a missing one skips the
test with a reason, or fails it under ``MLOPS_REQUIRE_INTEGRATION=1``), processes started in their own
process group with a log file, killed with the whole group on teardown, and waiting for HTTP.

Every service module (:mod:`support.postgres`, :mod:`support.seaweedfs`, :mod:`support.mlflow_server`,
:mod:`support.oci_registry`, :mod:`support.prometheus`, :mod:`support.envoy`) starts its process with
these: bound to 127.0.0.1 only, output in a log file of the given working directory, a
``RuntimeError`` with the last lines of that log when the process does not come up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest

LOOPBACK = "127.0.0.1"
LOG_TAIL_LINES = 40

# The log file of each process started here, so that wait_for_http can show its tail.
_LOGS: weakref.WeakKeyDictionary[subprocess.Popen[Any], Path] = weakref.WeakKeyDictionary()


def integration_required() -> bool:
    """True when a missing service binary must fail the test instead of skipping it."""
    return os.environ.get("MLOPS_REQUIRE_INTEGRATION") == "1"


def missing(what: str) -> NoReturn:
    message = f"{what} (set MLOPS_REQUIRE_INTEGRATION=1 to make this a failure)"
    if integration_required():
        pytest.fail(what, pytrace=False)
    pytest.skip(message)


def find_executable(name: str, extra_dirs: Sequence[Path] = ()) -> str | None:
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
    found = find_executable(name)
    if found is None:
        where = Path(sys.executable).parent
        missing(f"integration test needs {name}, but {name} not installed (not on PATH nor in {where})")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
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


def log_tail(log: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    if log is None:
        return "(no log file)"
    try:
        text = log.read_text(errors="replace")
    except OSError as exc:
        return f"(log {log} unreadable: {exc})"
    tail = "\n".join(text.splitlines()[-lines:])
    return f"--- last {lines} lines of {log} ---\n{tail}"


def startup_error(what: str, log: Path | None, proc: subprocess.Popen[Any] | None = None) -> RuntimeError:
    status = ""
    if proc is not None and proc.poll() is not None:
        status = f" (process exited with code {proc.returncode})"
    return RuntimeError(f"{what}{status}\n{log_tail(log)}")


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
            raise startup_error(f"process serving {url} died before answering", log, proc)
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
            raise startup_error(f"{url} did not answer within {timeout:.0f}s (last: {last_error})", log, proc)
        time.sleep(0.2)


def spawn(
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


def kill_group(proc: subprocess.Popen[Any], grace: float) -> None:
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
def managed(proc: subprocess.Popen[Any], grace: float) -> Iterator[subprocess.Popen[Any]]:
    try:
        yield proc
    finally:
        kill_group(proc, grace)

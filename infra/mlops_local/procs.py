"""Local processes: find a binary, start a process in its own group with a log file, stop them all.

Every process the local platform starts goes through one :class:`Supervisor`, which stops each
process group it started (SIGTERM, then SIGKILL after a grace period) in reverse order, on success,
on failure and on Ctrl-C; nothing else is ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlops_platform.errors import MlopsError, ServiceUnavailableError
from mlops_platform.exit_status import ExitStatus

LOOPBACK = "127.0.0.1"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class MissingBinary(MlopsError):
    """A program the local platform needs is not installed."""

    exit_code = ExitStatus.INVALID_INPUT

    def __init__(self, name: str, how: str) -> None:
        super().__init__(f"{name} is not installed (not on PATH nor beside {sys.executable}): {how}")
        self.name = name
        self.how = how


def find_binary(name: str, how: str) -> str:
    """The absolute path of executable ``name`` (beside this Python, then on PATH); ``how`` says how to
    get it when it is missing (raised as :class:`MissingBinary`)."""
    candidates = [Path(sys.executable).parent / name]
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate.absolute())
    raise MissingBinary(name, how)


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that are free right now.

    They are picked at random below the kernel's ephemeral range (which ``bind(0)`` draws from), so
    a port handed to a server here is not also handed to another program on the machine that asks
    the kernel for a free one in the moment before the server binds it.
    """
    low = max(1024, min(10000, _ephemeral_low() - 2000))
    high = max(low + 1000, _ephemeral_low() - 1)
    picked: list[int] = []
    sockets: list[socket.socket] = []
    try:
        while len(picked) < count:
            port = random.randint(low, high)
            if port in picked:
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
            picked.append(port)
        return picked
    finally:
        for sock in sockets:
            sock.close()


def http_status(url: str, timeout: float = 5.0) -> int:
    """The HTTP status of a GET of ``url`` (0 when nothing answers)."""
    try:
        with _NO_PROXY.open(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return 0


def tail(log: Path, lines: int = 25) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    grace: float = 10.0

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_http(self, url: str, timeout: float, ok: Sequence[int] = (200,)) -> None:
        """Poll ``url`` until it answers one of ``ok``; raise with the log's tail if the process dies
        or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive:
                raise ServiceUnavailableError(
                    f"{self.name} exited with {self.popen.returncode} before answering {url}; "
                    f"log {self.log}:\n{tail(self.log)}")
            if http_status(url, timeout=2) in ok:
                return
            if time.monotonic() > deadline:
                raise ServiceUnavailableError(
                    f"{self.name} did not answer {url} within {timeout:.0f}s; log {self.log}:\n{tail(self.log)}")
            time.sleep(0.1)


@dataclass
class Supervisor:
    """Starts processes in their own process groups and stops exactly those."""

    processes: list[Process] = field(default_factory=list)

    def start(
        self, name: str, argv: Sequence[str], log: Path, *, cwd: Path, env: Mapping[str, str] | None = None,
        grace: float = 10.0,
    ) -> Process:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            out.write(f"$ {' '.join(argv)}\n".encode())
            out.flush()
            popen = subprocess.Popen(
                list(argv), cwd=cwd, env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        process = Process(name, popen, log, grace)
        self.processes.append(process)
        return process

    def stop(self, process: Process) -> None:
        """SIGTERM the process's group, SIGKILL whatever is left after its grace period."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.popen.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=process.grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=10)
        if process in self.processes:
            self.processes.remove(process)

    def stop_all(self) -> None:
        for process in reversed(list(self.processes)):
            self.stop(process)

    def pids(self) -> list[int]:
        return [p.popen.pid for p in self.processes]


def descendants(pid: int | None = None) -> list[int]:
    """Every process below ``pid`` (default: this one) in the process tree, read from /proc."""
    root = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_descendants(grace: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL, whatever this process started and is still running (commands of
    background threads included); returns their ids."""
    found = descendants()
    for pid in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in found):
        time.sleep(0.1)
    for pid in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def wait_all_http(checks: Sequence[tuple[Process, str]], timeout: float) -> None:
    for process, url in checks:
        process.wait_http(url, timeout)


def run_logged(argv: Sequence[str], log: Path, *, cwd: Path, env: Mapping[str, str] | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; its output goes to ``log`` (appended) and is returned."""
    result = subprocess.run(list(argv), cwd=cwd, env=dict(env) if env is not None else None, capture_output=True,
                            text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n{result.stdout}{result.stderr}[exit {result.returncode}]\n")
    return result


__all__ = ["LOOPBACK", "MissingBinary", "Process", "Supervisor", "descendants", "find_binary", "free_ports",
           "http_status", "run_logged", "stop_descendants", "tail", "wait_all_http"]

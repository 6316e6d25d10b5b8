"""A Git smart-HTTP server on loopback that requires HTTP Basic authentication (the local Git host).

``git http-backend`` (the CGI program that ships with Git, as behind GitHub-style hosts' smart
HTTP) serves bare repositories under a root folder; a small ``http.server`` in front of it answers
``401`` with ``WWW-Authenticate: Basic`` to any request without the expected user and password
(clone, fetch and push alike, as a private repository on a Git host), and passes authenticated
requests to the CGI with ``REMOTE_USER`` set (which also enables ``git-receive-pack``).

Every request is recorded (method, path, user or None, status) for assertions.
"""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlops_local.httpd import serve_http
from mlops_local.procs import find_binary

GIT_HOW = "apt-get install git (Debian/Ubuntu), or see https://git-scm.com/downloads"

__all__ = ["GitHttpServer", "Request", "git_http_server"]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    user: str | None
    status: int


@dataclass
class GitHttpServer:
    root: Path
    username: str
    password: str
    url: str = ""
    requests: list[Request] = field(default_factory=list)

    def repo_url(self, name: str) -> str:
        """The clone URL of bare repository ``root/name`` (no credentials in it)."""
        return f"{self.url}/{name}"

    def pushes(self) -> list[Request]:
        """Requests that carried a pack to receive-pack (authenticated or refused)."""
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/git-receive-pack")]


def backend() -> str:
    """The ``git http-backend`` CGI program of the installed Git."""
    exec_path = subprocess.run(
        [find_binary("git", GIT_HOW), "--exec-path"], capture_output=True, text=True, check=True
    ).stdout.strip()
    found = Path(exec_path) / "git-http-backend"
    if not found.is_file():
        return find_binary("git-http-backend", GIT_HOW)
    return str(found)


@contextlib.contextmanager
def git_http_server(
    root: Path, username: str, password: str, *, cgi: str | None = None
) -> Iterator[GitHttpServer]:
    """Serve the bare repositories under ``root`` at ``http://127.0.0.1:<port>/<name>``."""
    program = cgi or backend()
    state = GitHttpServer(root=root, username=username, password=password)
    expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _do(self) -> None:
            parts = urlsplit(self.path)
            body = self._body()
            auth = self.headers.get("Authorization")
            if auth != expected:
                state.requests.append(Request(self.command, parts.path, None, 401))
                self._reply(
                    401,
                    [("WWW-Authenticate", 'Basic realm="git"'), ("Content-Type", "text/plain")],
                    b"authentication required\n",
                )
                return
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REMOTE_USER": username,
                "REMOTE_ADDR": self.client_address[0],
                "AUTH_TYPE": "Basic",
                "GATEWAY_INTERFACE": "CGI/1.1",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": parts.path,
                "QUERY_STRING": parts.query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
            }
            for key, value in self.headers.items():
                if key.lower() not in ("authorization", "content-type", "content-length"):
                    env["HTTP_" + key.upper().replace("-", "_")] = value
            out = subprocess.run([program], input=body, env=env, capture_output=True, timeout=120)
            head, _, payload = out.stdout.partition(b"\r\n\r\n")
            if not _:
                head, _, payload = out.stdout.partition(b"\n\n")
            status = 200
            headers: list[tuple[str, str]] = []
            for line in head.decode("latin-1").splitlines():
                key, _, value = line.partition(":")
                if key.lower() == "status":
                    status = int(value.strip().split()[0])
                elif key:
                    headers.append((key.strip(), value.strip()))
            if out.returncode != 0 and status == 200:
                status = 500
            state.requests.append(Request(self.command, parts.path, username, status))
            self._reply(status, headers, payload)

        do_GET = do_POST = _do

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serve_http(Handler) as state.url:
        yield state

"""The local platform's Git smart-HTTP server (``mlops_local.gitserver``), skipping when Git is missing.

``git http-backend`` (the CGI program that ships with Git) behind a loopback Basic-auth check; every
request is recorded (method, path, user or None, status) for assertions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from mlops_local.gitserver import GitHttpServer, Request, backend
from mlops_local.gitserver import git_http_server as _serve
from mlops_local.procs import MissingBinary

from .procs import require_binary

__all__ = ["GitHttpServer", "Request", "git_http_server"]


@contextlib.contextmanager
def git_http_server(root: Path, username: str, password: str) -> Iterator[GitHttpServer]:
    try:
        cgi = backend()
    except MissingBinary as exc:
        require_binary(exc.name)  # skips (or fails under integration) with the reason
        raise
    with _serve(root, username, password, cgi=cgi) as server:
        yield server

"""A threaded HTTP server on the loopback address: the local platform's own (one code path)."""

from __future__ import annotations

from mlops_local.httpd import serve_http

__all__ = ["serve_http"]

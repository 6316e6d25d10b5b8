"""An OCI image registry (Debian's ``docker-registry``, CNCF Distribution) on loopback."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from support.procs import LOOPBACK, free_port, managed, require_binary, spawn, wait_for_http


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
    proc = spawn([binary, "serve", str(config)], log, cwd=workdir)
    with managed(proc, grace=10):
        wait_for_http(f"http://{LOOPBACK}:{port}/v2/", timeout=60, proc=proc, log=log)
        yield f"{LOOPBACK}:{port}"

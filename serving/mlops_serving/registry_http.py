"""What the model server asks a tracking server, over MLflow's REST API, without importing MLflow.

A start that must download its version needs four things: the version (by number or alias), its
files, and its run's baseline statistics (or that it has none). ``import mlflow`` alone costs
about a second and a half of CPU (hundreds of modules), so a server pointed at an http(s) tracking
server asks these with the standard library: ``model-versions/get``,
``registered-models/alias``, ``model-versions/get-download-uri`` and ``runs/get`` for the
metadata, and the server's artifact proxy (``mlflow server --serve-artifacts``, what the cluster
runs: ``mlflow-artifacts:`` URIs) for the files. Credentials are MLflow's: Basic auth from
MLFLOW_TRACKING_USERNAME/PASSWORD (or ``user:password@`` in the URI), else a bearer
MLFLOW_TRACKING_TOKEN; never in a URL.

Anything else goes through :class:`mlops_platform.registry.Registry` (MLflow's client) unchanged:
an embedded (SQLite) store, artifacts MLflow's client reads directly (``s3://``, files), and
the client options only MLflow implements (:data:`MLFLOW_ONLY_ENV`: TLS client certificates, a
custom CA, ``MLFLOW_TRACKING_AUTH`` plugins).
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mlops_platform.errors import ConfigError, NotFoundError, ServiceUnavailableError
from mlops_platform.settings import PlatformSettings, mask_url

if TYPE_CHECKING:
    from mlops_platform.registry import Registry

MLFLOW_ONLY_ENV = ("MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_TRACKING_CLIENT_CERT_PATH",
                   "MLFLOW_TRACKING_SERVER_CERT_PATH", "MLFLOW_TRACKING_AUTH")
"""Client settings MLflow's client honours and this one does not: with any of them set, the
server uses MLflow's client."""

ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"
REGISTERED_MODEL_META = "registered_model_meta"


@dataclass(frozen=True)
class VersionInfo:
    """The fields of a registered version the server uses."""

    version: str
    run_id: str


def usable(settings: PlatformSettings) -> bool:
    """Whether :class:`HttpRegistry` can stand for MLflow's client with these settings."""
    scheme = urllib.parse.urlsplit(settings.effective_tracking_uri).scheme
    if scheme not in ("http", "https") or settings.embedded:
        return False
    return not any(os.environ.get(name, "").strip().lower() not in ("", "false", "0") for name in MLFLOW_ONLY_ENV)


class HttpRegistry:
    """The server's registry questions over HTTP; files that are not behind the tracking server's
    artifact proxy are fetched by ``fallback()`` (MLflow's client, built only then)."""

    def __init__(self, settings: PlatformSettings, fallback: Callable[[], Registry]) -> None:
        self.settings = settings
        self.tracking_uri = settings.effective_tracking_uri
        self._base = self.tracking_uri.rstrip("/")
        self._fallback = fallback
        self._headers: dict[str, str] = {}
        credentials = settings.tracking_credentials
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        if credentials is not None:
            basic = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
            self._headers["Authorization"] = f"Basic {basic}"
        elif token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._artifact_roots: dict[str, str] = {}

    # -- HTTP -------------------------------------------------------------------------------

    def _open(self, url: str) -> Any:
        request = urllib.request.Request(url, headers=self._headers)
        try:
            return urllib.request.urlopen(request, timeout=self.settings.tracking_timeout_s)
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            if exc.code == 404 or "RESOURCE_DOES_NOT_EXIST" in detail:
                raise NotFoundError(detail or f"{mask_url(url)}: not found") from exc
            if exc.code in (401, 403):
                raise ConfigError(
                    f"MLflow tracking server {mask_url(self.tracking_uri)} refused "
                    f"{'the credentials' if self._headers else 'a request without credentials'} ({exc.code}); "
                    "check MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN"
                ) from exc
            raise ServiceUnavailableError(
                f"MLflow tracking server {mask_url(self.tracking_uri)} answered {exc.code}: {detail[:200]}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceUnavailableError(
                f"MLflow tracking server unreachable at {mask_url(self.tracking_uri)} ({reason}); "
                "check MLFLOW_TRACKING_URI"
            ) from exc

    def _get(self, api: str, **params: str) -> Any:
        url = f"{self._base}/api/2.0/mlflow/{api}?{urllib.parse.urlencode(params)}"
        with self._open(url) as response:
            return json.loads(response.read())

    # -- what the server asks ---------------------------------------------------------------

    def check_reachable(self) -> None:
        with self._open(self._base + "/health") as response:
            response.read()

    def get_version(self, name: str, version: int | str | None = None, alias: str | None = None) -> VersionInfo:
        """A version by number or by alias (exactly one of them)."""
        if (version is None) == (alias is None):
            raise ValueError("give exactly one of version and alias")
        try:
            if alias is not None:
                found = self._get("registered-models/alias", name=name, alias=alias)
            else:
                found = self._get("model-versions/get", name=name, version=str(version))
        except NotFoundError as exc:
            what = f"alias {alias!r}" if alias is not None else f"version {version}"
            raise NotFoundError(f"model {name!r} has no {what}") from exc
        model_version = found["model_version"]
        return VersionInfo(str(model_version["version"]), str(model_version.get("run_id") or ""))

    def download_model_version(self, name: str, version: int | str, dst: Path) -> Path:
        """The files of a registered version (its MLflow model folder) into the new folder ``dst``."""
        uri = str(self._get("model-versions/get-download-uri", name=name, version=str(version))["artifact_uri"])
        located = self._proxied(uri)
        if located is None:
            return self._fallback().download_model_version(name, version, dst)
        dst.mkdir(parents=True)
        self._download_tree(*located, dst)
        # as MLflow's client adds it to a registered version's download (pyfunc flavours may read it)
        (dst / REGISTERED_MODEL_META).write_text(f"model_name: {json.dumps(name)}\nmodel_version: '{version}'\n")
        return dst

    def load_run_file(self, run_id: str, artifact_path: str) -> bytes:
        located = self._proxied(self._run_artifact_root(run_id))
        if located is None:
            return self._fallback().load_run_file(run_id, artifact_path)
        base, root = located
        try:
            with self._open(_file_url(base, posixpath.join(root, artifact_path))) as response:
                data: bytes = response.read()
                return data
        except (NotFoundError, ServiceUnavailableError) as exc:
            # as MLflow's client reports any failed download (a proxy over S3 answers 500 for a missing
            # file); the caller asks run_has_artifact whether it is really missing
            raise NotFoundError(f"artifact {artifact_path!r} missing from run {run_id}: {exc}") from exc

    def run_has_artifact(self, run_id: str, artifact_path: str) -> bool:
        """Whether the run lists ``artifact_path`` (a listing that fails counts as present)."""
        located = self._proxied(self._run_artifact_root(run_id))
        if located is None:
            return self._fallback().run_has_artifact(run_id, artifact_path)
        base, root = located
        parent = posixpath.dirname(artifact_path)
        try:
            listed = self._list(base, posixpath.join(root, parent) if parent else root)
        except Exception:
            return True
        return any(entry["path"] == posixpath.basename(artifact_path) for entry in listed)

    # -- the artifact proxy -----------------------------------------------------------------

    def _run_artifact_root(self, run_id: str) -> str:
        if run_id not in self._artifact_roots:
            self._artifact_roots[run_id] = str(self._get("runs/get", run_id=run_id)["run"]["info"]["artifact_uri"])
        return self._artifact_roots[run_id]

    def _proxied(self, uri: str) -> tuple[str, str] | None:
        """``(server base URL, path under the proxy)`` of an ``mlflow-artifacts:`` URI, else None."""
        parts = urllib.parse.urlsplit(uri)
        if parts.scheme != "mlflow-artifacts":
            return None
        base = self._base
        if parts.netloc:  # mlflow-artifacts://host:port/path: that server, with the tracking URI's scheme
            base = f"{urllib.parse.urlsplit(self._base).scheme}://{parts.netloc}"
        return base, parts.path.strip("/")

    def _list(self, base: str, path: str) -> list[dict[str, Any]]:
        with self._open(f"{base}{ARTIFACTS_API}?{urllib.parse.urlencode({'path': path})}") as response:
            files: list[dict[str, Any]] = json.loads(response.read()).get("files", [])
        for entry in files:
            name = str(entry.get("path", ""))
            if not name or name.startswith("/") or ".." in name.split("/") or "\\" in name:
                raise ServiceUnavailableError(f"artifact listing of {path!r} names an unsafe path {name!r}")
        return files

    def _download_tree(self, base: str, path: str, dst: Path) -> None:
        for entry in self._list(base, path):
            name = str(entry["path"])
            if entry.get("is_dir"):
                (dst / name).mkdir(parents=True, exist_ok=True)
                self._download_tree(base, posixpath.join(path, name), dst / name)
                continue
            target = dst / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with self._open(_file_url(base, posixpath.join(path, name))) as response, target.open("wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)


def _file_url(base: str, path: str) -> str:
    return f"{base}{ARTIFACTS_API}/{urllib.parse.quote(path)}"


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read()
        payload = json.loads(body)
        return f"{payload.get('error_code', '')}: {payload.get('message', '')}".strip(": ")
    except Exception:
        return ""


class VersionSource(Protocol):
    """What loading a version asks a registry: :class:`HttpRegistry` or MLflow's
    :class:`~mlops_platform.registry.Registry`."""

    tracking_uri: str

    def check_reachable(self) -> None: ...

    def get_version(self, name: str, version: int | str | None = None, alias: str | None = None) -> Any: ...

    def download_model_version(self, name: str, version: int | str, dst: Path) -> Path: ...

    def load_run_file(self, run_id: str, artifact_path: str) -> bytes: ...

    def run_has_artifact(self, run_id: str, artifact_path: str) -> bool: ...

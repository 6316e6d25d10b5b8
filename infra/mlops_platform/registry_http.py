"""An http(s) tracking server read, and the runs jobs record written, over MLflow's REST API without MLflow.

``import mlflow`` alone costs about a second and a half of CPU (hundreds of modules), paid by
every model-server start and every Argo Workflows step of ``mlops batch-predict``, ``mlops drift``
and ``mlops promote``. What they ask a tracking server is a handful of calls of MLflow's REST API
2.0, which :class:`HttpRegistry` makes with the standard library, sending what MLflow's own
client sends (``tests/platform/test_registry_http.py`` holds each side to what the other wrote):

- a version by number or alias (``model-versions/get``, ``registered-models/alias``), its files
  (``model-versions/get-download-uri``), its tags (``model-versions/set-tag``);
- a run (``runs/get``), the newest runs of a job (``runs/search``) and its files;
- a job's run: ``experiments/get-by-name`` (``experiments/create``), ``runs/create``,
  ``runs/log-batch``, its text files, ``runs/update`` FINISHED (FAILED when a step fails).

Files go through the server's artifact proxy (``mlflow server --serve-artifacts``, what the
cluster runs: ``mlflow-artifacts:`` URIs). Credentials are MLflow's: Basic auth from
MLFLOW_TRACKING_USERNAME/PASSWORD (or ``user:password@`` in the URI), else a bearer
MLFLOW_TRACKING_TOKEN; never in a URL.

Anything else goes through MLflow's client (it is a :class:`~mlops_platform.registry.Registry`,
whose client is built on first use): operations not defined here (registering, aliases, logging
models), files not behind the proxy (``s3://``, local), values over MLflow's limits, and every
operation when a client option only MLflow implements is set (:data:`MLFLOW_ONLY_ENV`: TLS
client certificates, a custom CA, ``MLFLOW_TRACKING_AUTH`` plugins, AWS SigV4, workspaces).
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_platform.errors import NotFoundError, ServiceUnavailableError
from mlops_platform.registry import Registry, metric_key, refused_error, tags_filter, unreachable_error
from mlops_platform.registry_sqlite import (
    REGISTERED_MODEL_META,
    USER_TAG,
    RunDataRecord,
    RunInfoRecord,
    RunRecord,
    VersionRecord,
    within_mlflow_limits,
)
from mlops_platform.settings import mask_url

if TYPE_CHECKING:
    from mlops_platform.settings import PlatformSettings

MLFLOW_ONLY_ENV = ("MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_TRACKING_CLIENT_CERT_PATH",
                   "MLFLOW_TRACKING_SERVER_CERT_PATH", "MLFLOW_TRACKING_AUTH", "MLFLOW_TRACKING_AWS_SIGV4",
                   "MLFLOW_ENABLE_WORKSPACES", "MLFLOW_WORKSPACE")
"""Client settings MLflow's client honours and this one does not: with any of them set,
:func:`usable` is False and MLflow's client is used."""

API = "/api/2.0/mlflow"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"

MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
"""What one ``runs/log-batch`` may hold (``mlflow.utils.validation``); a bigger run is recorded by
MLflow's client, which splits it."""


def usable(settings: PlatformSettings) -> bool:
    """Whether :class:`HttpRegistry` can stand for MLflow's client with these settings."""
    scheme = urllib.parse.urlsplit(settings.effective_tracking_uri).scheme
    if scheme not in ("http", "https") or settings.embedded:
        return False
    return not any(os.environ.get(name, "").strip().lower() not in ("", "false", "0") for name in MLFLOW_ONLY_ENV)


class HttpRegistry(Registry):
    """:class:`~mlops_platform.registry.Registry` over an http(s) tracking server's REST API.

    ``fallback`` builds the :class:`~mlops_platform.registry.Registry` whose MLflow client serves
    what this one does not (the model server shares one); without it, this registry builds its
    own on first use."""

    def __init__(self, settings: PlatformSettings, fallback: Callable[[], Registry] | None = None) -> None:
        self.settings = settings  # no MLflow client here (Registry.__init__ builds one)
        self.tracking_uri = settings.effective_tracking_uri
        self._client = None
        self._fallback = fallback
        self._base = self.tracking_uri.rstrip("/")
        self._headers: dict[str, str] = {}
        credentials = settings.tracking_credentials
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        if credentials is not None:
            basic = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
            self._headers["Authorization"] = f"Basic {basic}"
        elif token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._artifact_roots: dict[str, str] = {}

    def _connect(self) -> Any:
        if self._fallback is None:
            return super()._connect()
        self._client = self._fallback().client
        return self._client

    # -- HTTP -------------------------------------------------------------------------------

    def _open(self, url: str, data: bytes | None = None, method: str | None = None,
              content_type: str | None = None) -> Any:
        headers = dict(self._headers)
        if content_type is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            return urllib.request.urlopen(request, timeout=self.settings.tracking_timeout_s)
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            if exc.code == 404 or (exc.code < 500 and _is_not_found(detail)):
                raise NotFoundError(detail or f"{mask_url(url)}: not found") from exc
            if exc.code in (401, 403):
                advice = "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN"
                raise refused_error(self.tracking_uri, bool(self._headers), exc.code, advice) from exc
            raise ServiceUnavailableError(
                f"MLflow tracking server {mask_url(self.tracking_uri)} answered {exc.code}: {detail[:200]}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise unreachable_error(self.tracking_uri, exc) from exc

    def _get(self, api: str, **params: str) -> Any:
        with self._open(f"{self._base}{API}/{api}?{urllib.parse.urlencode(params)}") as response:
            return json.loads(response.read())

    def _post(self, api: str, body: Mapping[str, Any]) -> Any:
        # NaN and infinities as MLflow's client sends them (protobuf's JSON: "NaN", "Infinity")
        data = json.dumps(_json_floats(body), allow_nan=False).encode()
        with self._open(f"{self._base}{API}/{api}", data, "POST", "application/json") as response:
            return json.loads(response.read() or b"{}")

    # -- connectivity -----------------------------------------------------------------------

    def check_reachable(self) -> None:
        with self._open(self._base + "/health") as response:
            response.read()

    # -- registered versions ----------------------------------------------------------------

    def get_version(self, name: str, version: int | str | None = None, alias: str | None = None) -> Any:
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
        return _version_record(found["model_version"])

    def set_version_tags(self, name: str, version: int | str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            try:
                self._post("model-versions/set-tag", {"name": name, "version": str(version), "key": key,
                                                      "value": value})
            except NotFoundError as exc:
                raise NotFoundError(f"model {name!r} has no version {version}") from exc

    def download_model_version(self, name: str, version: int | str, dst: Path) -> Path:
        """The files of a registered version (its MLflow model folder) into the new folder ``dst``."""
        uri = str(self._get("model-versions/get-download-uri", name=name, version=str(version))["artifact_uri"])
        located = self._proxied(uri)
        if located is None:
            return super().download_model_version(name, version, dst)
        import yaml

        dst.mkdir(parents=True)
        self._download_tree(*located, dst)
        meta = {"model_name": name, "model_version": str(version)}  # as MLflow's client writes it
        (dst / REGISTERED_MODEL_META).write_text(
            yaml.safe_dump(meta, default_flow_style=False, allow_unicode=True, sort_keys=True), encoding="utf-8")
        return dst

    # -- runs -------------------------------------------------------------------------------

    def get_run(self, run_id: str) -> Any:
        try:
            run = self._get("runs/get", run_id=run_id)["run"]
        except NotFoundError as exc:
            raise NotFoundError(f"no run {run_id!r}") from exc
        record = _run_record(run)
        self._artifact_roots[run_id] = record.info.artifact_uri
        return record

    def load_run_file(self, run_id: str, artifact_path: str) -> bytes:
        located = self._proxied(self._run_artifact_root(run_id))
        if located is None:
            return super().load_run_file(run_id, artifact_path)
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
            return super().run_has_artifact(run_id, artifact_path)
        base, root = located
        parent = posixpath.dirname(artifact_path)
        try:
            listed = self._list(base, posixpath.join(root, parent) if parent else root)
        except Exception:
            return True
        return any(entry["path"] == posixpath.basename(artifact_path) for entry in listed)

    def ensure_experiment(self, name: str) -> str:
        try:
            return str(self._get("experiments/get-by-name", experiment_name=name)["experiment"]["experiment_id"])
        except NotFoundError:
            pass
        body = {"name": name}
        location = self.settings.effective_artifact_root
        if location:
            body["artifact_location"] = location
        try:
            return str(self._post("experiments/create", body)["experiment_id"])
        except ServiceUnavailableError as exc:  # another job may have created it meanwhile
            try:
                found = self._get("experiments/get-by-name", experiment_name=name)
            except NotFoundError:
                raise exc from None
            return str(found["experiment"]["experiment_id"])

    def recent_job_run_tags(
        self, experiment: str, match: Mapping[str, str], tag: str, max_runs: int
    ) -> list[str | None]:
        """The value of ``tag`` on the newest ``max_runs`` active runs of ``experiment`` whose tags
        equal ``match``, newest first (empty when the experiment does not exist)."""
        try:
            found = self._get("experiments/get-by-name", experiment_name=experiment)
        except NotFoundError:
            return []
        search = {
            "experiment_ids": [str(found["experiment"]["experiment_id"])],
            "filter": tags_filter(match),
            "run_view_type": "ACTIVE_ONLY",
            "max_results": max_runs,
            "order_by": ["attributes.start_time DESC"],
        }
        runs = self._post("runs/search", search).get("runs", [])
        return [_pairs(run.get("data", {}).get("tags")).get(tag) for run in runs]

    def record_job_run(
        self,
        experiment: str,
        run_name: str,
        tags: Mapping[str, str],
        params: Mapping[str, object],
        metrics: Mapping[str, float],
        texts: Mapping[str, str],
    ) -> tuple[str, str]:
        """As :meth:`Registry.record_job_run`, with the same requests MLflow's client makes: the
        run with its tags, its params and metrics in one batch, its text files through the artifact
        proxy (MLflow's client writes them when the run's artifacts are not behind it), then
        FINISHED (FAILED when a step fails)."""
        param_values = {key: str(value) for key, value in params.items()}
        metric_values = {metric_key(key): float(value) for key, value in metrics.items()}
        if (
            len(param_values) > MAX_PARAMS_PER_BATCH
            or len(metric_values) > MAX_METRICS_PER_BATCH
            or len(param_values) + len(metric_values) > MAX_METRICS_PER_BATCH
            or not within_mlflow_limits(tags, param_values, metric_values, texts)
        ):
            return super().record_job_run(experiment, run_name, tags, params, metrics, texts)
        experiment_id = self.ensure_experiment(experiment)
        now = int(time.time() * 1000)
        create = {
            "experiment_id": experiment_id,
            "user_id": tags.get(USER_TAG, "unknown"),
            "run_name": run_name,
            "start_time": now,
            "tags": [{"key": key, "value": value} for key, value in tags.items()],
        }
        run = self._post("runs/create", create)["run"]
        run_id = str(run["info"]["run_id"])
        artifact_uri = str(run["info"].get("artifact_uri", ""))
        self._artifact_roots[run_id] = artifact_uri
        status = "FAILED"
        try:
            if param_values or metric_values:
                self._post("runs/log-batch", {
                    "run_id": run_id,
                    "metrics": [{"key": key, "value": value, "timestamp": now, "step": 0}
                                for key, value in metric_values.items()],
                    "params": [{"key": key, "value": value} for key, value in param_values.items()],
                })
            located = self._proxied(artifact_uri)
            for path, text in texts.items():
                if located is None:
                    self.client.log_text(run_id, text, path)
                    continue
                base, root = located
                normalized = posixpath.normpath(path)  # as MLflow's client names the file
                with self._open(_file_url(base, posixpath.join(root, normalized)), text.encode("utf-8"), "PUT",
                                "text/plain") as response:
                    response.read()
            status = "FINISHED"
        finally:
            self._post("runs/update", {"run_id": run_id, "run_uuid": run_id, "status": status,
                                       "end_time": int(time.time() * 1000)})
        return run_id, self.run_url(experiment_id, run_id)

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


# -- MLflow's JSON --------------------------------------------------------------------------------


def _json_floats(value: Any) -> Any:
    """``value`` with NaN and infinite floats as protobuf's JSON writes them."""
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, Mapping):
        return {key: _json_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_floats(item) for item in value]
    return value


def _pairs(items: Any) -> dict[str, str]:
    """A ``[{"key": ..., "value": ...}]`` list of MLflow's JSON as a dict (a missing value is "")."""
    return {str(item["key"]): str(item.get("value", "")) for item in items or []}


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _version_record(found: Mapping[str, Any]) -> VersionRecord:
    """A ``ModelVersion`` of MLflow's JSON, with the fields MLflow's ``ModelVersion`` gives it."""
    return VersionRecord(
        name=str(found["name"]), version=int(found["version"]), run_id=found.get("run_id"),
        source=str(found.get("source", "")), storage_location=None, status=str(found.get("status", "")),
        current_stage=str(found.get("current_stage", "")), description=found.get("description"),
        creation_timestamp=_optional_int(found.get("creation_timestamp", 0)),
        last_updated_timestamp=_optional_int(found.get("last_updated_timestamp", 0)),
        tags=_pairs(found.get("tags")), aliases=[str(alias) for alias in found.get("aliases", [])],
    )


def _run_record(run: Mapping[str, Any]) -> RunRecord:
    """A ``Run`` of MLflow's JSON, with the fields MLflow's ``Run`` gives it (an end time of 0 is
    none; a metric its latest value)."""
    info, data = run["info"], run.get("data", {})
    end_time = int(info.get("end_time", 0)) or None
    return RunRecord(
        RunInfoRecord(
            run_id=str(info["run_id"]), run_name=str(info.get("run_name", "")),
            experiment_id=str(info.get("experiment_id", "")), status=str(info.get("status", "RUNNING")),
            start_time=int(info.get("start_time", 0)), end_time=end_time,
            lifecycle_stage=str(info.get("lifecycle_stage", "")), artifact_uri=str(info.get("artifact_uri", "")),
        ),
        RunDataRecord(
            tags=_pairs(data.get("tags")),
            params=_pairs(data.get("params")),
            metrics={str(m["key"]): float(m.get("value", 0.0)) for m in data.get("metrics", [])},
        ),
    )


def _file_url(base: str, path: str) -> str:
    return f"{base}{ARTIFACTS_API}/{urllib.parse.quote(path)}"


def _is_not_found(detail: str) -> bool:
    """What :class:`~mlops_platform.registry.Registry` takes for a missing resource in MLflow's
    answer (a missing alias is answered ``INVALID_PARAMETER_VALUE: ... not found``)."""
    code = detail.split(":", 1)[0]
    return "RESOURCE_DOES_NOT_EXIST" in code or "NOT_FOUND" in code or "not found" in detail.lower()


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read()
        payload = json.loads(body)
        return f"{payload.get('error_code', '')}: {payload.get('message', '')}".strip(": ")
    except Exception:
        return ""

"""Model-registry access (MLflow) shared by training, serving, the jobs and the promotion bot.

The alias and tag names it reads and writes are defined in :mod:`mlops_platform.registry_names`.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_platform.errors import ConfigError, NotFoundError, ServiceUnavailableError

if TYPE_CHECKING:  # pydantic is imported by who builds the settings, not by the CLI's parser
    from mlops_platform.settings import PlatformSettings

log = logging.getLogger(__name__)


def _quiet_mlflow() -> None:
    for name in ("mlflow", "alembic", "urllib3.connectionpool"):
        logging.getLogger(name).setLevel(logging.ERROR)


class Registry:
    """A thin, typed facade over ``MlflowClient`` for one tracking/registry URI."""

    def __init__(self, settings: PlatformSettings) -> None:
        self.settings = settings
        self.tracking_uri = settings.effective_tracking_uri
        self._client: Any = None
        self._connect()

    @property
    def client(self) -> Any:
        """MLflow's ``MlflowClient`` for this URI (built on first use by subclasses that read the
        store themselves: :class:`mlops_platform.registry_sqlite.SqliteRegistry`)."""
        return self._client if self._client is not None else self._connect()

    def _connect(self) -> Any:
        import mlflow
        from mlflow import MlflowClient

        _quiet_mlflow()
        if self.settings.embedded:
            self._prepare_embedded()
        credentials = self.settings.tracking_credentials
        if credentials is not None:  # MLflow's client reads Basic auth from these (never from the URI we pass)
            os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = credentials
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        return self._client

    def _prepare_embedded(self) -> None:
        try:
            import sqlalchemy  # noqa: F401  (the SQL store of full mlflow)
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ConfigError(
                f"MLFLOW_TRACKING_URI={self.tracking_uri} needs the SQL store of full mlflow; "
                "install the 'embedded' extra (pip install 'mlops[embedded]') or point "
                "MLFLOW_TRACKING_URI at a tracking server"
            ) from exc
        self.settings.home.mkdir(parents=True, exist_ok=True)

    # -- connectivity ---------------------------------------------------------------------

    def check_reachable(self) -> None:
        """Fail fast, within the configured timeout, when a tracking server does not answer.

        MLflow's own client retries for minutes before it gives up; a job should say at once
        which server it could not reach.
        """
        import urllib.error
        import urllib.request

        from mlops_platform.settings import mask_url

        if self.settings.embedded:
            return
        url = self.tracking_uri.rstrip("/") + "/health"
        request = urllib.request.Request(url)
        credentials = self.settings.tracking_credentials
        if credentials is not None:
            token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.settings.tracking_timeout_s) as response:
                if response.status >= 500:
                    raise ServiceUnavailableError(f"MLflow tracking server {mask_url(url)} answered {response.status}")
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise refused_error(self.tracking_uri, credentials is not None, exc.code,
                                    "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or user:password@ in "
                                    "MLFLOW_TRACKING_URI") from exc
            if exc.code >= 500:
                raise ServiceUnavailableError(
                    f"MLflow tracking server {mask_url(self.tracking_uri)} answered {exc.code}"
                ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise unreachable_error(self.tracking_uri, exc) from exc

    # -- experiments and runs -------------------------------------------------------------

    def ensure_experiment(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        return str(self.client.create_experiment(name, artifact_location=self.settings.effective_artifact_root))

    def run_url(self, experiment_id: str, run_id: str) -> str:
        base = self.settings.ui_url
        if base is None:
            return f"runs:/{run_id} (open it with `mlflow ui --backend-store-uri {self.tracking_uri}`)"
        return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"

    def record_job_run(
        self,
        experiment: str,
        run_name: str,
        tags: Mapping[str, str],
        params: Mapping[str, object],
        metrics: Mapping[str, float],
        texts: Mapping[str, str],
    ) -> tuple[str, str]:
        """One finished MLflow run that records a job (batch inference, a drift check): tags,
        params and metrics in one batch, and text artifacts by path. Returns its id and link;
        a failure part-way marks the run FAILED."""
        from mlflow.entities import Metric, Param

        experiment_id = self.ensure_experiment(experiment)
        run_id = str(self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags)).info.run_id)
        try:
            now = int(time.time() * 1000)
            self.client.log_batch(
                run_id,
                metrics=[Metric(metric_key(k), float(v), now, 0) for k, v in metrics.items()],
                params=[Param(k, str(v)) for k, v in params.items()],
            )
            for path, text in texts.items():
                self.client.log_text(run_id, text, path)
            self.client.set_terminated(run_id, "FINISHED")
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        return run_id, self.run_url(experiment_id, run_id)

    def recent_job_run_tags(
        self, experiment: str, match: Mapping[str, str], tag: str, max_runs: int
    ) -> list[str | None]:
        """The value of ``tag`` on the newest ``max_runs`` runs of ``experiment`` whose tags equal
        ``match``, newest first (empty when the experiment does not exist)."""
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            return []
        runs = self.client.search_runs(
            [found.experiment_id],
            filter_string=tags_filter(match),
            order_by=["attributes.start_time DESC"],
            max_results=max_runs,
        )
        return [run.data.tags.get(tag) for run in runs]

    def load_run_file(self, run_id: str, artifact_path: str) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = self.client.download_artifacts(run_id, artifact_path, tmp)
            except Exception as exc:
                raise NotFoundError(f"artifact {artifact_path!r} missing from run {run_id}: {exc}") from exc
            return Path(local).read_bytes()

    def run_has_artifact(self, run_id: str, artifact_path: str) -> bool:
        """Whether the run lists ``artifact_path`` (a listing that fails counts as present)."""
        parent = str(Path(artifact_path).parent)
        try:
            listed = self.client.list_artifacts(run_id, None if parent == "." else parent)
        except Exception:
            return True
        return any(item.path == artifact_path for item in listed)

    def download_model_version(self, name: str, version: int | str, dst: Path) -> Path:
        """The files of a registered version (its MLflow model folder) into the new folder ``dst``."""
        from mlflow.artifacts import download_artifacts

        dst.mkdir(parents=True)
        return Path(download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(dst)))

    def get_run(self, run_id: str) -> Any:
        return self.client.get_run(run_id)

    def load_run_json(self, run_id: str, artifact_path: str) -> Any:
        return json.loads(self.load_run_file(run_id, artifact_path))

    # -- registered models and versions ---------------------------------------------------

    def list_models(self) -> list[Any]:
        return sorted(self.client.search_registered_models(), key=lambda m: m.name)

    def list_versions(self, name: str) -> list[Any]:
        self.get_model(name)
        versions = self.client.search_model_versions(f"name = '{_quote(name)}'")
        return sorted(versions, key=lambda v: int(v.version))

    def versions_tagged(self, name: str, match: Mapping[str, str]) -> list[Any]:
        """The versions of ``name`` whose tags equal ``match``, oldest first (one search the registry
        filters, not a listing of every version); none for a model not registered."""
        versions = self.client.search_model_versions(f"name = '{_quote(name)}' and {tags_filter(match)}")
        return sorted(versions, key=lambda v: int(v.version))

    def get_model(self, name: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(name)
        except MlflowException as exc:
            if _is_not_found(exc):
                raise NotFoundError(f"no registered model named {name!r}") from exc
            raise

    def get_version(self, name: str, version: int | str | None = None, alias: str | None = None) -> Any:
        """A version by number or by alias (exactly one of them)."""
        from mlflow.exceptions import MlflowException

        if (version is None) == (alias is None):
            raise ValueError("give exactly one of version and alias")
        try:
            if alias is not None:
                return self.client.get_model_version_by_alias(name, alias)
            return self.client.get_model_version(name, str(version))
        except MlflowException as exc:
            if _is_not_found(exc):
                what = f"alias {alias!r}" if alias is not None else f"version {version}"
                raise NotFoundError(f"model {name!r} has no {what}") from exc
            raise

    def version_by_alias(self, name: str, alias: str) -> Any | None:
        """The version holding ``alias``, or None when the model or the alias does not exist."""
        try:
            return self.get_version(name, alias=alias)
        except NotFoundError:
            return None

    def set_alias(self, name: str, alias: str, version: int | str) -> None:
        self.client.set_registered_model_alias(name, alias, str(version))

    def set_version_tags(self, name: str, version: int | str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(name, str(version), key, value)

    def delete_version(self, name: str, version: int | str) -> None:
        self.client.delete_model_version(name, str(version))

    def register(self, name: str, model_uri: str, run_id: str, model_id: str | None, tags: Mapping[str, str]) -> Any:
        """Create a new version of ``name`` (creating the registered model if needed)."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(name)
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code) and "already exists" not in str(exc):
                raise
        return self.client.create_model_version(name, model_uri, run_id=run_id, tags=dict(tags), model_id=model_id)

    def load_sklearn_model(self, name: str, version: int | str) -> Any:
        import mlflow.sklearn

        return mlflow.sklearn.load_model(f"models:/{name}/{version}")

    def load_pyfunc_model(self, name: str, version: int | str) -> Any:
        import mlflow.pyfunc

        return mlflow.pyfunc.load_model(f"models:/{name}/{version}")

    def store_run_json(self, run_id: str, artifact_path: str, value: Any) -> None:
        """Write ``value`` as the JSON artifact ``artifact_path`` of run ``run_id`` (finished or not)."""
        self.client.log_dict(run_id, value, artifact_path)


def open_registry(settings: PlatformSettings) -> Registry:
    """The registry of ``settings``, read (and job runs written) without importing MLflow where it
    can: an http(s) tracking server over its REST API (:mod:`mlops_platform.registry_http`), the
    embedded SQLite store directly (:mod:`mlops_platform.registry_sqlite`); else MLflow's client."""
    from mlops_platform import registry_http
    from mlops_platform.registry_sqlite import SqliteRegistry

    if registry_http.usable(settings):
        return registry_http.HttpRegistry(settings)
    return SqliteRegistry.open(settings) or Registry(settings)


def refused_error(tracking_uri: str, with_credentials: bool, code: int, advice: str) -> ConfigError:
    """The error of a tracking server answering 401 or 403; ``advice`` names the settings to check."""
    from mlops_platform.settings import mask_url

    sent = "the credentials" if with_credentials else "a request without credentials"
    return ConfigError(f"MLflow tracking server {mask_url(tracking_uri)} refused {sent} ({code}); check {advice}")


def unreachable_error(tracking_uri: str, exc: OSError) -> ServiceUnavailableError:
    """The error of a tracking server that could not be reached (refused, timed out, no such host)."""
    from mlops_platform.settings import mask_url

    reason = getattr(exc, "reason", exc)
    return ServiceUnavailableError(
        f"MLflow tracking server unreachable at {mask_url(tracking_uri)} ({reason}); check MLFLOW_TRACKING_URI"
    )


def tags_filter(match: Mapping[str, str]) -> str:
    """MLflow's search filter (``search_runs``, ``search_model_versions``) for tags equal to ``match``."""
    return " and ".join(f"tags.`{key}` = '{_quote(value)}'" for key, value in match.items())


def metric_key(name: str) -> str:
    """``name`` with the characters MLflow refuses in metric keys replaced by ``_``."""
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in name)


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def _is_not_found(exc: Exception) -> bool:
    code = str(getattr(exc, "error_code", ""))
    return "RESOURCE_DOES_NOT_EXIST" in code or "NOT_FOUND" in code or "not found" in str(exc).lower()

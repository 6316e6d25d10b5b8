"""Typed settings shared by every component (pydantic-settings).

The embedded default keeps everything under ``.mlops/`` in the working directory: an MLflow
SQLite store, an artifact folder and an object-store folder. Pointing ``MLFLOW_TRACKING_URI`` at
a tracking server and ``MLOPS_STORE_URI`` at ``s3://bucket/prefix`` moves the same code to the
cluster. Component settings subclass :class:`PlatformSettings` and add their own fields under
their own prefix (``MLOPS_TRAIN_``, ``MLOPS_SERVING_``, ...); the shared fields keep their
explicit variable names whatever the subclass prefix.

Settings are built once, at start-up, by :func:`load_settings`, which turns a validation error
into a :class:`~mlops_platform.errors.ConfigError` naming the environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlops_platform.errors import ConfigError

TRACKING_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "file")
STORE_SCHEMES = ("", "file", "s3")


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class PlatformSettings(BaseSettings):
    """Connection settings every component shares."""

    model_config = SettingsConfigDict(
        env_prefix="MLOPS_", extra="ignore", env_ignore_empty=True, populate_by_name=True
    )

    home: Path = Field(
        Path(".mlops"),
        validation_alias=_env("MLOPS_HOME"),
        description="Folder of the embedded default (SQLite store, artifacts, object store).",
    )
    tracking_uri: str | None = Field(
        None,
        validation_alias=_env("MLFLOW_TRACKING_URI"),
        description="MLflow tracking server or store; default: sqlite:///<home>/mlflow.db.",
    )
    tracking_username: str | None = Field(
        None,
        validation_alias=_env("MLFLOW_TRACKING_USERNAME"),
        description="Basic-auth user of an http(s) tracking server (or user:password@ in MLFLOW_TRACKING_URI).",
    )
    tracking_password: SecretStr | None = Field(
        None,
        validation_alias=_env("MLFLOW_TRACKING_PASSWORD"),
        description="Basic-auth password of an http(s) tracking server.",
    )
    artifact_root: str | None = Field(
        None,
        validation_alias=_env("MLOPS_ARTIFACT_ROOT"),
        description="Artifact location for new experiments in the embedded default; "
        "default: <home>/artifacts. A tracking server chooses its own.",
    )
    store_uri: str | None = Field(
        None,
        validation_alias=_env("MLOPS_STORE_URI"),
        description="Object store for prediction logs and job outputs: a folder or s3://bucket/prefix; "
        "default: <home>/store.",
    )
    s3_endpoint_url: str | None = Field(
        None,
        validation_alias=_env("MLOPS_S3_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL"),
        description="S3 endpoint (MinIO, SeaweedFS); unset for AWS S3.",
    )
    aws_access_key_id: str | None = Field(None, validation_alias=_env("AWS_ACCESS_KEY_ID"))
    aws_secret_access_key: SecretStr | None = Field(None, validation_alias=_env("AWS_SECRET_ACCESS_KEY"))
    aws_region: str | None = Field(None, validation_alias=_env("AWS_DEFAULT_REGION", "AWS_REGION"))
    tracking_timeout_s: float = Field(
        10.0,
        gt=0,
        validation_alias=_env("MLOPS_TRACKING_TIMEOUT_S"),
        description="How long a command waits for the tracking server before it gives up.",
    )
    mlflow_ui_url: str | None = Field(
        None,
        validation_alias=_env("MLOPS_MLFLOW_UI_URL"),
        description="Base URL people open for MLflow links; default: the tracking URI when it is http(s).",
    )
    pushgateway_url: str | None = Field(
        None,
        validation_alias=_env("MLOPS_PUSHGATEWAY_URL"),
        description="Prometheus Pushgateway the batch and drift jobs push their metrics to; unset: no push.",
    )

    @field_validator("tracking_uri")
    @classmethod
    def _check_tracking_uri(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme = urlsplit(value).scheme
        if scheme not in TRACKING_SCHEMES:
            raise ValueError(
                f"unsupported scheme {scheme or '(none)'!r} in {mask_url(value)!r}; "
                f"expected one of {', '.join(s + '://' for s in TRACKING_SCHEMES)}"
            )
        return value

    @field_validator("store_uri")
    @classmethod
    def _check_store_uri(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in STORE_SCHEMES or (parts.scheme == "s3" and not parts.netloc):
            raise ValueError(f"expected a folder or s3://bucket/prefix, got {value!r}")
        return value

    @field_validator("s3_endpoint_url", "mlflow_ui_url", "pushgateway_url")
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        return check_http_url(value)

    # -- effective values -------------------------------------------------------------------

    @property
    def embedded(self) -> bool:
        """True when MLflow runs in-process on local files rather than behind a server."""
        return urlsplit(self.effective_tracking_uri).scheme in ("sqlite", "file")

    @property
    def effective_tracking_uri(self) -> str:
        """The tracking URI; for http(s) WITHOUT ``user:password@`` (see :attr:`tracking_credentials`),
        so that no link, log line or card built from it carries a secret. A database URI keeps its
        credentials (they are the database's) and is shown only through :func:`mask_url`."""
        if self.tracking_uri:
            parts = urlsplit(self.tracking_uri)
            if parts.scheme in ("http", "https") and "@" in parts.netloc:
                return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
            return self.tracking_uri
        return f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def tracking_credentials(self) -> tuple[str, str] | None:
        """Basic-auth user and password of an http(s) tracking server: MLFLOW_TRACKING_USERNAME /
        MLFLOW_TRACKING_PASSWORD, else the ``user:password@`` of MLFLOW_TRACKING_URI."""
        if self.tracking_username:
            password = self.tracking_password.get_secret_value() if self.tracking_password else ""
            return self.tracking_username, password
        if self.tracking_uri:
            parts = urlsplit(self.tracking_uri)
            if parts.scheme in ("http", "https") and parts.username is not None:
                return unquote(parts.username), unquote(parts.password or "")
        return None

    @property
    def model_cache_home(self) -> Path:
        """The local model cache (:mod:`mlops_serving.modelcache`) the server and batch-predict use
        unless told otherwise: ``<home>/model-cache``."""
        return self.home / "model-cache"

    @property
    def effective_artifact_root(self) -> str | None:
        """Artifact location for new experiments, or None to let a tracking server decide."""
        if self.artifact_root:
            return self.artifact_root
        if self.embedded:
            return (self.home / "artifacts").resolve().as_uri()
        return None

    @property
    def effective_store_uri(self) -> str:
        if self.store_uri:
            return self.store_uri
        return str((self.home / "store").resolve())

    @property
    def ui_url(self) -> str | None:
        if self.mlflow_ui_url:
            return self.mlflow_ui_url.rstrip("/")
        if urlsplit(self.effective_tracking_uri).scheme in ("http", "https"):
            return self.effective_tracking_uri.rstrip("/")
        return None

    def describe(self) -> dict[str, str]:
        """Effective settings for display, secrets masked, keyed by environment variable."""
        shown: dict[str, str] = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                text = "********" if value.get_secret_value() else ""
            elif value is None:
                text = "(unset)"
            else:
                text = mask_url(str(value))
            shown[env_name(type(self), name, field)] = text
        shown["(effective) tracking URI"] = mask_url(self.effective_tracking_uri)
        shown["(effective) artifact root"] = self.effective_artifact_root or "(chosen by the tracking server)"
        shown["(effective) object store"] = mask_url(self.effective_store_uri)
        shown["(effective) mode"] = "embedded" if self.embedded else "server"
        return shown


def check_http_url(value: str | None) -> str | None:
    """``value`` unchanged if it is unset or an http(s):// URL; for the settings' field validators."""
    if value is not None and urlsplit(value).scheme not in ("http", "https"):
        raise ValueError(f"expected an http(s):// URL, got {value!r}")
    return value


def env_name(cls: type[BaseSettings], name: str, field: Any) -> str:
    """The environment variable a field is read from (its first alias, or prefix + name)."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        first = alias.choices[0]
        return str(first)
    if isinstance(alias, str):
        return alias
    prefix = str(cls.model_config.get("env_prefix", ""))
    return f"{prefix}{name}".upper()


def mask_url(value: str) -> str:
    """Hide the password of a URL such as postgresql://user:secret@host/db."""
    parts = urlsplit(value)
    if parts.password is not None:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        netloc = f"{parts.username}:********@{host}"
        return urlunsplit(parts._replace(netloc=netloc))
    return value


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build settings once from the environment, failing fast with the variable's name."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field_name = str(error["loc"][0]) if error["loc"] else ""
            field = cls.model_fields.get(field_name)
            variable = env_name(cls, field_name, field) if field is not None else field_name
            raw = os.environ.get(variable)
            shown = f" (value {mask_url(raw)!r})" if raw is not None and "SECRET" not in variable else ""
            problems.append(f"{variable}{shown}: {error['msg']}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems)) from None


class AnalysisSettings(PlatformSettings):
    """``mlops analysis replay``: the shared settings plus the model servers' API key."""

    model_config = SettingsConfigDict(
        env_prefix="MLOPS_ANALYSIS_", extra="ignore", env_ignore_empty=True, populate_by_name=True
    )

    api_key: SecretStr | None = Field(None, description="API key the replay sends to the model servers.")

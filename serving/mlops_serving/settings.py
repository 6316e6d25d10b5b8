"""Settings of the model server: the shared platform settings plus ``MLOPS_SERVING_*``.

Built once, by the app factory's caller (``mlops serve`` / ``python -m mlops_serving``), and
validated fail-fast; nothing reads the environment at import time or in a request path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from mlops_platform.model_names import SERVED_NAME_PATTERN
from mlops_platform.settings import PlatformSettings

ENV_PREFIX = "MLOPS_SERVING_"

_SPEC = re.compile(rf"^(?P<name>{SERVED_NAME_PATTERN})(?::(?P<version>[0-9]+)|@(?P<alias>[A-Za-z0-9_-]+))$")


@dataclass(frozen=True)
class ModelRef:
    """A model to serve: a registered name plus a version number (what Git pins) or an alias."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, spec: str) -> ModelRef:
        match = _SPEC.match(spec.strip())
        if match is None:
            raise ValueError(
                f"invalid model {spec.strip()!r}: expected NAME:VERSION (e.g. wine-classifier:3) "
                "or NAME@ALIAS (e.g. wine-classifier@staging)"
            )
        version = match.group("version")
        return cls(match.group("name"), int(version) if version else None, match.group("alias"))

    def __str__(self) -> str:
        return f"{self.name}:{self.version}" if self.version is not None else f"{self.name}@{self.alias}"


class ServingSettings(PlatformSettings):
    """``MLOPS_SERVING_<FIELD>`` for every field below; shared fields keep their own names."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", env_ignore_empty=True, populate_by_name=True
    )

    models: Annotated[tuple[ModelRef, ...], NoDecode] = Field(
        (),
        description="Models to serve, comma-separated NAME:VERSION or NAME@ALIAS, e.g. "
        "'wine-classifier:3,breast-cancer-classifier@staging'. The first one answers /predict and "
        "/invocations; every one answers under /models/<name>/ and /v2/models/<name>/.",
    )
    host: str = Field("127.0.0.1", description="Address to listen on (the container sets 0.0.0.0).")
    port: int = Field(8080, ge=1, le=65535, description="Port to listen on.")
    grpc_port: int | None = Field(
        None, ge=1, le=65535,
        description="Port of the Open Inference Protocol's gRPC service (inference.GRPCInferenceService) on "
        "HOST; unset: no gRPC. Same models, keys, limits, metrics and prediction log as HTTP.",
    )
    auth: Literal["api-key", "off"] | None = Field(
        None,
        description="'api-key' or 'off'. Default: 'off' for the embedded default (a local "
        "SQLite store; logged at start-up), 'api-key' otherwise.",
    )
    api_keys_file: Path | None = Field(
        None,
        description="File of salted API-key hashes (`mlops keys create` prints the lines), "
        "mounted from a Secret; re-read when it changes. Required when auth is 'api-key'.",
    )
    api_keys_reload_s: float = Field(
        2.0, ge=0, description="How often, at most, the API-key file is checked for changes."
    )
    max_rows: int = Field(10_000, ge=1, description="Largest number of rows in one request (413 above).")
    max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest request body in bytes (413 above)."
    )
    request_timeout_s: float = Field(
        30.0, gt=0, description="Deadline for a prediction once its input is parsed (504 after it)."
    )
    batching: bool = Field(True, description="Gather concurrent requests of one model into one predict call.")
    batch_window_ms: float = Field(
        2.0, ge=0, le=1000,
        description="How long a batch waits, at most, for requests that have arrived but are still "
        "being parsed. A lone request never waits.",
    )
    batch_max_rows: int = Field(256, ge=1, description="Most rows in one batched predict call.")
    predlog_sample_rate: float = Field(
        1.0, ge=0, le=1, description="Share of requests whose rows are logged (0 switches logging off)."
    )
    predlog_buffer_rows: int = Field(
        100_000, ge=1, description="Most rows buffered for the prediction log; more are dropped and counted."
    )
    predlog_flush_interval_s: float = Field(
        10.0, gt=0, description="How often buffered prediction-log records are written."
    )
    predlog_flush_rows: int = Field(
        20_000, ge=1, description="Buffered rows that trigger a write before the interval."
    )
    predlog_write_timeout_s: float = Field(
        5.0, gt=0, description="Longest one prediction-log write may take (a timed-out write is retried "
        "under the same object key, then dropped and counted)."
    )
    predlog_shutdown_flush_s: float = Field(
        8.0, gt=0, description="Part of MLOPS_SERVING_SHUTDOWN_TIMEOUT_S kept for the final prediction-log "
        "flush; what is unwritten then is dropped (reason 'shutdown') and logged."
    )
    load_retry_initial_s: float = Field(
        1.0, gt=0, description="First wait before retrying a model that could not be loaded."
    )
    load_retry_max_s: float = Field(
        60.0, gt=0, description="Longest wait between load retries (the wait doubles up to it)."
    )
    model_cache_dir: Path | None = Field(
        None,
        description="Folder of the local model cache (a pinned version found there is loaded without the "
        "registry); default: <MLOPS_HOME>/model-cache. The container's is on its /tmp emptyDir.",
    )
    shutdown_timeout_s: float = Field(
        25.0, gt=0,
        description="The whole drain after SIGTERM: in-flight requests, then the final prediction-log "
        "flush (MLOPS_SERVING_PREDLOG_SHUTDOWN_FLUSH_S of it); keep it below the pod's "
        "terminationGracePeriodSeconds.",
    )
    header_timeout_s: float = Field(
        10.0, gt=0, le=3600,
        description="How long a client may take to send a request's headers, from the connection's accept "
        "(and from the first byte of each later request on it); the connection is closed after it.",
    )
    idle_timeout_s: float = Field(
        30.0, ge=1, le=3600,
        description="How long a keep-alive connection may stay idle between requests before it is closed.",
    )
    body_timeout_s: float = Field(
        30.0, gt=0, le=3600,
        description="How long a client may take to send a request's body, from the end of its headers: a "
        "prediction whose body is late is answered 408 and its connection closed; any other connection "
        "still receiving a body then is closed a second later.",
    )
    parse_processes: int = Field(
        1, ge=1, le=64,
        description="Processes that parse request bodies of 64 KiB or more, so that a large (or hostile) "
        "body never holds up the event loop; more let several large bodies be parsed at once.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    log_format: Literal["json", "text"] = Field("json", description="'json' (one object a line) or 'text'.")
    access_log: bool = Field(
        False, description="Log every request; errors (4xx/5xx) are logged either way."
    )

    @field_validator("models", mode="before")
    @classmethod
    def _parse_models(cls, value: Any) -> Any:
        if isinstance(value, str):
            specs = [s for s in (part.strip() for part in value.split(",")) if s]
            return tuple(ModelRef.parse(s) for s in specs)
        if isinstance(value, list | tuple):
            return tuple(ModelRef.parse(v) if isinstance(v, str) else v for v in value)
        return value

    @field_validator("models")
    @classmethod
    def _unique_names(cls, value: tuple[ModelRef, ...]) -> tuple[ModelRef, ...]:
        names = [ref.name for ref in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"each model may be served once; repeated: {', '.join(duplicates)}")
        return value

    @model_validator(mode="after")
    def _check(self) -> ServingSettings:
        if not self.models:
            raise ValueError(
                "no model to serve: set MLOPS_SERVING_MODELS (e.g. 'wine-classifier:3') or pass --model"
            )
        if self.effective_auth == "api-key" and self.api_keys_file is None:
            raise ValueError(
                "auth is 'api-key' but MLOPS_SERVING_API_KEYS_FILE is not set; create keys with "
                "`mlops keys create` or set MLOPS_SERVING_AUTH=off explicitly"
            )
        if self.predlog_sample_rate > 0 and not (
            self.predlog_write_timeout_s <= self.predlog_shutdown_flush_s < self.shutdown_timeout_s
        ):
            raise ValueError(
                "prediction-log budgets do not fit: need MLOPS_SERVING_PREDLOG_WRITE_TIMEOUT_S <= "
                "MLOPS_SERVING_PREDLOG_SHUTDOWN_FLUSH_S < MLOPS_SERVING_SHUTDOWN_TIMEOUT_S"
            )
        if self.grpc_port is not None and self.grpc_port == self.port:
            raise ValueError("MLOPS_SERVING_GRPC_PORT must differ from MLOPS_SERVING_PORT")
        if self.load_retry_max_s < self.load_retry_initial_s:
            raise ValueError("MLOPS_SERVING_LOAD_RETRY_MAX_S must be at least MLOPS_SERVING_LOAD_RETRY_INITIAL_S")
        return self

    @property
    def effective_auth(self) -> Literal["api-key", "off"]:
        if self.auth is not None:
            return self.auth
        return "off" if self.embedded else "api-key"

    @property
    def effective_model_cache_dir(self) -> Path:
        return self.model_cache_dir if self.model_cache_dir is not None else self.model_cache_home

    @property
    def request_drain_s(self) -> float:
        """How long SIGTERM waits for in-flight requests: the drain minus the prediction-log flush."""
        if self.predlog_sample_rate > 0:
            return self.shutdown_timeout_s - self.predlog_shutdown_flush_s
        return self.shutdown_timeout_s

    @property
    def default_model(self) -> str:
        return self.models[0].name

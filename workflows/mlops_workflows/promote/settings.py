"""Settings of the promotion bot: the shared platform settings plus ``MLOPS_PROMOTE_*``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from mlops_platform.errors import ConfigError
from mlops_platform.settings import PlatformSettings, check_http_url

ENV_PREFIX_PROMOTE = "MLOPS_PROMOTE_"
GITHUB_API_URL = "https://api.github.com"
GITLAB_API_URL = "https://gitlab.com/api/v4"


class PromotionSettings(PlatformSettings):
    """Where the GitOps repository and its Git host are, who the bot is, and what it checks."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX_PROMOTE, extra="ignore", env_ignore_empty=True, populate_by_name=True
    )

    repo_path: Path | None = Field(
        None,
        validation_alias=AliasChoices("MLOPS_PROMOTE_REPO_PATH"),
        description="Clone of the GitOps repository the bot works in; default: the Git top level of the "
        "working directory. The bot never checks out or changes its working tree.",
    )
    remote: str = Field(
        "origin", validation_alias=AliasChoices("MLOPS_PROMOTE_REMOTE"), description="Git remote to push to."
    )
    base_branch: str = Field(
        "main",
        validation_alias=AliasChoices("MLOPS_PROMOTE_BASE_BRANCH"),
        description="Branch Argo CD deploys from; pull requests target it.",
    )
    models_dir: str = Field(
        "serving/manifests/models",
        validation_alias=AliasChoices("MLOPS_PROMOTE_MODELS_DIR"),
        description="Folder of the model release pins (<model>/<env>/release.env), relative to the repository.",
    )
    host: Literal["github", "gitlab", "gitea"] = Field(
        "github",
        validation_alias=AliasChoices("MLOPS_PROMOTE_HOST"),
        description="Kind of Git host whose REST API opens pull (merge) requests.",
    )
    api_url: str | None = Field(
        None,
        validation_alias=AliasChoices("MLOPS_PROMOTE_API_URL"),
        description=f"REST API base URL; default: {GITHUB_API_URL} (GitHub) or {GITLAB_API_URL} (GitLab); "
        "required for Gitea (http://HOST/api/v1).",
    )
    repository: str | None = Field(
        None,
        validation_alias=AliasChoices("MLOPS_PROMOTE_REPOSITORY", "GITHUB_REPOSITORY"),
        description="Repository slug on the Git host, owner/name (GitLab: the project path).",
    )
    token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("MLOPS_PROMOTE_TOKEN", "GITHUB_TOKEN"),
        description="API token: contents and pull-request write on this repository only. Never printed.",
    )
    git_username: str | None = Field(
        None,
        validation_alias=AliasChoices("MLOPS_PROMOTE_GIT_USERNAME", "GIT_USERNAME"),
        description="Username that goes with the token on the HTTPS Git transport; default: x-access-token "
        "(GitHub, and Gitea, which takes the token's own user whatever the name) or oauth2 (GitLab).",
    )
    bot_name: str = Field(
        "mlops-promotion-bot",
        validation_alias=AliasChoices("MLOPS_PROMOTE_BOT_NAME"),
        description="Author and committer name of the bot's commits.",
    )
    bot_email: str = Field(
        "mlops-promotion-bot@users.noreply.github.com",
        validation_alias=AliasChoices("MLOPS_PROMOTE_BOT_EMAIL"),
        description="Author and committer email of the bot's commits (also how it recognises its own commits).",
    )
    labels: str = Field(
        "promotion",
        validation_alias=AliasChoices("MLOPS_PROMOTE_LABELS"),
        description="Comma-separated labels for every pull request; env:<env> and model:<name> are added.",
    )
    staging_direct_commit: bool = Field(
        False,
        validation_alias=AliasChoices("MLOPS_PROMOTE_STAGING_DIRECT_COMMIT"),
        description="Commit staging promotions straight to the base branch (no pull request). "
        "Production always goes through a pull request.",
    )
    push_attempts: int = Field(
        3,
        ge=1,
        le=10,
        validation_alias=AliasChoices("MLOPS_PROMOTE_PUSH_ATTEMPTS"),
        description="Attempts at a push that is rejected because the remote moved (fetch, rebuild, retry).",
    )
    api_timeout_s: float = Field(
        15.0, gt=0, validation_alias=AliasChoices("MLOPS_PROMOTE_API_TIMEOUT_S"), description="Git host API timeout."
    )
    kubectl: str = Field(
        "kubectl",
        validation_alias=AliasChoices("MLOPS_PROMOTE_KUBECTL"),
        description="kubectl used to render the environment (kubectl kustomize) for the model card.",
    )
    prometheus_url: str | None = Field(
        None,
        validation_alias=AliasChoices("MLOPS_PROMETHEUS_URL"),
        description="Prometheus for the staging health gate and drift status; unset: the gate is skipped.",
    )
    health_window: str = Field(
        "1h",
        pattern=r"^[0-9]+[smhd]$",
        validation_alias=AliasChoices("MLOPS_PROMOTE_HEALTH_WINDOW"),
        description="Window of the staging health gate (a PromQL duration).",
    )
    max_error_ratio: float = Field(
        0.01,
        ge=0,
        le=1,
        validation_alias=AliasChoices("MLOPS_PROMOTE_MAX_ERROR_RATIO"),
        description="Largest share of 5xx answers of the version in staging over the window.",
    )
    min_requests: float = Field(
        1,
        ge=0,
        validation_alias=AliasChoices("MLOPS_PROMOTE_MIN_REQUESTS"),
        description="Fewest requests the version must have answered in staging over the window.",
    )
    drift_alert_pattern: str = Field(
        # The drift alerts of infra/monitoring/rules/prometheusrule-drift.yaml (each carries a model
        # label); MlopsDriftCheckStale says drift is unknown, not that it happened, so it does not block.
        "MlopsFeatureDrift|MlopsPredictionDrift",
        validation_alias=AliasChoices("MLOPS_PROMOTE_DRIFT_ALERT_PATTERN"),
        description="Regular expression (full match) of the alert names that mean drift (alerts carry a model label).",
    )

    @field_validator("api_url", "prometheus_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        checked = check_http_url(value)
        return checked.rstrip("/") if checked else checked

    @field_validator("repository")
    @classmethod
    def _check_repository(cls, value: str | None) -> str | None:
        if value is not None and (value.count("/") < 1 or value.startswith("/") or value.endswith("/")):
            raise ValueError(f"expected owner/name, got {value!r}")
        return value

    @property
    def effective_api_url(self) -> str:
        if self.api_url:
            return self.api_url
        if self.host == "gitea":
            raise ConfigError(
                "MLOPS_PROMOTE_API_URL is not set: a Gitea host has no public default; "
                "set it to the server's API, e.g. http://gitea-http.gitea.svc.cluster.local:3000/api/v1"
            )
        return GITLAB_API_URL if self.host == "gitlab" else GITHUB_API_URL

    @property
    def effective_git_username(self) -> str:
        if self.git_username:
            return self.git_username
        return "oauth2" if self.host == "gitlab" else "x-access-token"

    @property
    def label_list(self) -> list[str]:
        return [label.strip() for label in self.labels.split(",") if label.strip()]

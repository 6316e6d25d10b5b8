"""Registry names, defined once: model aliases, model-version tag keys and job-run tag keys.

Registry stages are deprecated since MLflow 2.9: environments are **aliases** (``staging``,
``production``: the one list, ``mlops_platform/environments.yaml``) and governance facts are
**version tags** (``gate``, lineage, promotion, the latest drift result). The names below are the
contract between the components that write and read them; every module imports them from here
(``tests/platform/test_contracts.py`` fails on a literal copy elsewhere).

- ``candidate``: the newest version that passed its gate (moved by training only);
- ``staging``, ``production``: the version that environment runs, i.e. what Git pins there once
  its canary completed (moved by ``mlops promote --finalize`` only).
"""

from __future__ import annotations

from mlops_platform import environments

# -- aliases ------------------------------------------------------------------------------------

ENVIRONMENTS = environments.names()
"""Environments, which are also the MLflow alias names, in promotion order: the one list,
``mlops_platform/environments.yaml``."""

STAGING, PRODUCTION = ENVIRONMENTS[0], ENVIRONMENTS[-1]
"""The first environment (a version's first stop; the bot may commit there directly) and the last
(the one clients are served from, what training compares a candidate with)."""

CANDIDATE = "candidate"
"""Alias of the newest version that passed its gate (training sets it); never an environment."""

ALIASES = (CANDIDATE, *ENVIRONMENTS)
"""Every alias the platform moves."""

# -- version tags written at registration (training), read by `mlops models`, the server, the bot --

TAG_GATE = "gate"  # GATE_PASSED | GATE_FAILED
GATE_PASSED, GATE_FAILED = "passed", "failed"
TAG_GATE_REASONS = "gate.reasons"  # JSON list of human-readable check results
TAG_DATASET_DIGEST = "dataset.digest"
TAG_DATASET_SOURCE = "dataset.source"
TAG_GIT_COMMIT = "git.commit"
TAG_BASELINE = "baseline"  # artifact URI of the baseline statistics
TAG_CONFIG = "training.config"  # path of the training config in the repository
TAG_CONFIG_DIGEST = "training.config.digest"  # sha256 of the effective training config (JSON)
TAG_HOLDOUT = "holdout"  # artifact URI of the labelled holdout rows (Parquet: features + `target`)
HOLDOUT_ARTIFACT = "holdout/holdout.parquet"
HOLDOUT_TARGET = "target"

# -- version tags written by `mlops promote --finalize` when a rollout in <env> completed ---------

TAG_PROMOTION_PR = "promotion.{env}.pr"
TAG_PROMOTION_COMMIT = "promotion.{env}.commit"
TAG_PROMOTION_LANDED = "promotion.{env}.landed_at"
TAG_PROMOTION_FINALIZED = "promotion.{env}.finalized_at"

# -- version tags written by the drift job after each completed check, read by the promotion bot
# (the model card's drift section when no Prometheus is configured) ---------------------------------

DRIFT_TAG_PREFIX = "drift."
TAG_DRIFT_STATUS = DRIFT_TAG_PREFIX + "status"  # ok | warning | drift | insufficient_data
TAG_DRIFT_CHECKED_AT = DRIFT_TAG_PREFIX + "checked_at"  # end of the compared window (UTC, ISO 8601)
TAG_DRIFT_MAX_FEATURE_PSI = DRIFT_TAG_PREFIX + "max_feature_psi"
TAG_DRIFT_ROWS = DRIFT_TAG_PREFIX + "rows"
TAG_DRIFT_RUN = DRIFT_TAG_PREFIX + "run_id"  # the MLflow run holding the reports
DRIFT_TAGS = (TAG_DRIFT_STATUS, TAG_DRIFT_CHECKED_AT, TAG_DRIFT_MAX_FEATURE_PSI, TAG_DRIFT_ROWS, TAG_DRIFT_RUN)

# -- tags of the MLflow runs of training and of the jobs (batch-predict, drift) -------------------

RUN_TAG_JOB = "mlops.job"  # JOB_BATCH | JOB_DRIFT
JOB_BATCH, JOB_DRIFT = "batch-predict", "drift"
RUN_TAG_MODEL_NAME = "mlops.model_name"
RUN_TAG_MODEL_VERSION = "mlops.model_version"
RUN_TAG_DRIFT_STATUS = "mlops.drift_status"
RUN_TAG_SOURCE = "mlops.source"
RUN_TAG_SHARD = "mlops.shard"
RUN_TAG_INPUT_DIGEST = "mlops.input_digest"
RUN_TAG_GIT_DIRTY = "git.dirty"
RUN_TAG_GIT_COMMIT = "mlflow.source.git.commit"  # MLflow's own key: its UI links the commit

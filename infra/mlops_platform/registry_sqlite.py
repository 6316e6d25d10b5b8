"""The embedded registry (MLflow's SQLite store) read, and the runs jobs record written, without MLflow.

``import mlflow`` and opening its SQLAlchemy store cost 2-3 s of every ``mlops batch-predict``,
``mlops drift`` and ``mlops promote`` on the embedded default, more than their work. What those
commands ask is a handful of rows: a version by number or alias, its tags, its run's metrics, a
run's artifact file, and, to record a job, one run with its tags, params, metrics and text files.
:class:`SqliteRegistry` answers these with :mod:`sqlite3` on the same database, written exactly as
MLflow writes it (the contract test ``tests/platform/test_registry_sqlite.py`` reads each side's
writes with the other). Everything else it is asked (registering, aliases, logging models) goes
through MLflow's client, built on first use: it is a :class:`~mlops_platform.registry.Registry`.

It is used only when all of these hold, else :func:`mlops_platform.registry.open_registry` returns
MLflow's client:

- the tracking URI is the embedded ``sqlite:///`` file and MLflow has created it;
- its schema revision (``alembic_version``) is one this module was checked against
  (:data:`SCHEMA_REVISIONS`; a test fails when the installed MLflow's newest revision is not one);
- no MLflow workspace is selected (every row is in the ``default`` workspace);
- artifacts are local files (``file:`` URIs); a run or version stored elsewhere is read by MLflow's
  client.
"""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mlops_platform.errors import NotFoundError, ServiceUnavailableError
from mlops_platform.registry import Registry, metric_key

if TYPE_CHECKING:
    from mlops_platform.settings import PlatformSettings

SCHEMA_REVISIONS = frozenset({"dc11669786a5"})
"""Alembic revisions of MLflow's tracking schema whose tables this module reads and writes (the
newest of MLflow 3.17). Another revision sends every operation to MLflow's client."""

WORKSPACE = "default"
"""MLflow's workspace of every row when workspaces are off."""

WORKSPACE_ENV = ("MLFLOW_ENABLE_WORKSPACES", "MLFLOW_WORKSPACE")
"""MLflow settings that select a workspace; with any set, MLflow's client is used."""

DELETED_STAGE = "Deleted_Internal"
"""``model_versions.current_stage`` of a version MLflow deleted (it keeps the row)."""

MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
"""MLflow's limits on run keys and values (``mlflow.utils.validation``): a run outside them is
recorded by MLflow's client, which refuses it with its own message."""

BUSY_TIMEOUT_S = 30.0
"""How long a statement waits for another process's write to the store (MLflow's server or a job)."""

RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"
REGISTERED_MODEL_META = "registered_model_meta"
"""The file MLflow's client adds to a registered version's download (pyfunc flavours may read it)."""


@dataclass(frozen=True)
class VersionRecord:
    """A registered version: the fields of MLflow's ``ModelVersion`` the platform reads."""

    name: str
    version: int
    run_id: str | None
    source: str
    storage_location: str | None
    status: str
    current_stage: str
    description: str | None
    creation_timestamp: int | None
    last_updated_timestamp: int | None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunInfoRecord:
    run_id: str
    run_name: str | None
    experiment_id: str
    status: str
    start_time: int | None
    end_time: int | None
    lifecycle_stage: str
    artifact_uri: str


@dataclass(frozen=True)
class RunDataRecord:
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]


@dataclass(frozen=True)
class RunRecord:
    """A run: the fields of MLflow's ``Run`` (``info``, ``data``) the platform reads."""

    info: RunInfoRecord
    data: RunDataRecord


def _now_ms() -> int:
    return int(time.time() * 1000)


def _local_path(uri: str | None) -> Path | None:
    """The local folder of a ``file:`` URI (or a plain absolute path); None for any other store."""
    if not uri:
        return None
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        return Path(urllib.request.url2pathname(parts.path))
    if parts.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None


def relative_artifact_path(artifact_path: str) -> PurePosixPath | None:
    """``artifact_path`` as a path inside a run's artifacts, or None when it would leave them."""
    path = PurePosixPath(artifact_path)
    if not artifact_path or path.is_absolute() or ".." in path.parts or "\\" in artifact_path:
        return None
    return path


def within_mlflow_limits(tags: Mapping[str, str], params: Mapping[str, str], metrics: Mapping[str, float],
                         texts: Iterable[str]) -> bool:
    """Whether a run's keys and values are within MLflow's limits (:data:`MAX_KEY`,
    :data:`MAX_TAG_VALUE`, :data:`MAX_PARAM_VALUE`) and its text files stay inside its artifacts.
    A run outside them is left to MLflow's client, which refuses it with its own message."""
    return not (
        any(len(key) > MAX_KEY for key in [*tags, *params, *metrics])
        or any(len(value) > MAX_TAG_VALUE for value in tags.values())
        or any(len(value) > MAX_PARAM_VALUE for value in params.values())
        or any(relative_artifact_path(path) is None for path in texts)
    )


def _metric_value(value: float) -> tuple[float, bool]:
    """As MLflow stores a metric: NaN as 0 with ``is_nan``, infinities as the largest finite floats."""
    if math.isnan(value):
        return 0.0, True
    if math.isinf(value):
        return (1.7976931348623157e308 if value > 0 else -1.7976931348623157e308), False
    return value, False


class SqliteRegistry(Registry):
    """:class:`~mlops_platform.registry.Registry` over the embedded store, reading it directly."""

    def __init__(self, settings: PlatformSettings, database: Path) -> None:  # no MLflow client here
        self.settings = settings
        self.tracking_uri = settings.effective_tracking_uri
        self._client = None
        self.database = database

    @classmethod
    def open(cls, settings: PlatformSettings) -> SqliteRegistry | None:
        """The embedded store of ``settings`` read directly, or None when MLflow's client must be used
        (module docstring)."""
        uri = settings.effective_tracking_uri
        if not settings.embedded or not uri.startswith("sqlite:///"):
            return None
        if any(os.environ.get(name, "").strip().lower() not in ("", "false", "0") for name in WORKSPACE_ENV):
            return None
        if _local_path(settings.effective_artifact_root) is None:
            return None
        database = Path(urllib.parse.unquote(uri[len("sqlite:///"):].split("?", 1)[0]))
        if not database.is_file():
            return None  # MLflow creates it (and its schema) on first use
        try:
            with closing_connection(database) as conn:
                revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
                other_workspace = conn.execute(
                    "SELECT 1 FROM model_versions WHERE workspace != ? LIMIT 1", (WORKSPACE,)
                ).fetchone()
        except sqlite3.Error:
            return None
        if revision is None or revision[0] not in SCHEMA_REVISIONS or other_workspace is not None:
            return None
        return cls(settings, database)

    # -- the database ---------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing_connection(self.database) as conn:
                yield conn
        except sqlite3.OperationalError as exc:
            raise ServiceUnavailableError(f"embedded MLflow store {self.database}: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction that holds the store's write lock from its start (as MLflow's store does)."""
        with self._read() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    # -- connectivity ---------------------------------------------------------------------

    def check_reachable(self) -> None:
        return None  # a local file, found when this registry was opened

    # -- registered versions --------------------------------------------------------------

    def get_version(self, name: str, version: int | str | None = None, alias: str | None = None) -> Any:
        """A version by number or by alias (exactly one of them)."""
        if (version is None) == (alias is None):
            raise ValueError("give exactly one of version and alias")
        what = f"alias {alias!r}" if alias is not None else f"version {version}"
        with self._read() as conn:
            if alias is not None:
                found = conn.execute(
                    "SELECT version FROM registered_model_aliases WHERE workspace = ? AND name = ? AND alias = ?",
                    (WORKSPACE, name, alias),
                ).fetchone()
                if found is None:
                    raise NotFoundError(f"model {name!r} has no {what}")
                number = int(found[0])
            else:
                try:
                    number = int(str(version))
                except ValueError:
                    raise NotFoundError(f"model {name!r} has no {what}") from None
            record = _version(conn, name, number)
        if record is None:
            raise NotFoundError(f"model {name!r} has no {what}")
        return record

    def set_version_tags(self, name: str, version: int | str, tags: Mapping[str, str]) -> None:
        with self._write() as conn:
            number = int(str(version))
            if _version(conn, name, number) is None:
                raise NotFoundError(f"model {name!r} has no version {version}")
            conn.executemany(
                "INSERT INTO model_version_tags (key, value, name, version, workspace) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (key, name, version, workspace) DO UPDATE SET value = excluded.value",
                [(key, value, name, number, WORKSPACE) for key, value in tags.items()],
            )

    def download_model_version(self, name: str, version: int | str, dst: Path) -> Path:
        """The files of a registered version (its MLflow model folder) into the new folder ``dst``."""
        record = self.get_version(name, version=version)
        source = _local_path(record.storage_location or record.source)
        if source is None or not source.is_dir():
            return super().download_model_version(name, version, dst)
        import yaml

        shutil.copytree(source, dst)
        meta = {"model_name": name, "model_version": str(version)}  # as MLflow's client writes it
        (dst / REGISTERED_MODEL_META).write_text(
            yaml.safe_dump(meta, default_flow_style=False, allow_unicode=True, sort_keys=True), encoding="utf-8")
        return dst

    # -- runs -----------------------------------------------------------------------------

    def get_run(self, run_id: str) -> Any:
        with self._read() as conn:
            row = conn.execute(
                "SELECT run_uuid, name, experiment_id, status, start_time, end_time, lifecycle_stage, artifact_uri "
                "FROM runs WHERE run_uuid = ?",
                (run_id,),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no run {run_id!r}")
            tags = dict(conn.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)).fetchall())
            params = dict(conn.execute("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,)).fetchall())
            metrics = {
                key: math.nan if is_nan else float(value)
                for key, value, is_nan in conn.execute(
                    "SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = ?", (run_id,)
                )
            }
        info = RunInfoRecord(str(row[0]), row[1], str(row[2]), str(row[3]), row[4], row[5], str(row[6]), str(row[7]))
        return RunRecord(info, RunDataRecord(tags, params, metrics))

    def _artifact_file(self, run_id: str, artifact_path: str) -> Path | None:
        """The local file of a run's artifact, or None when MLflow's client must read it (the run
        is not in this store, or its artifacts are not local files)."""
        relative = relative_artifact_path(artifact_path)
        if relative is None:
            raise NotFoundError(f"artifact {artifact_path!r} missing from run {run_id}: a path outside the run's "
                                "artifacts")
        with self._read() as conn:
            row = conn.execute("SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
        root = _local_path(row[0]) if row is not None else None
        return None if root is None else root.joinpath(*relative.parts)

    def load_run_file(self, run_id: str, artifact_path: str) -> bytes:
        path = self._artifact_file(run_id, artifact_path)
        if path is None:
            return super().load_run_file(run_id, artifact_path)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise NotFoundError(f"artifact {artifact_path!r} missing from run {run_id}: {exc}") from exc

    def run_has_artifact(self, run_id: str, artifact_path: str) -> bool:
        if relative_artifact_path(artifact_path) is None:
            return False
        path = self._artifact_file(run_id, artifact_path)
        if path is None:
            return super().run_has_artifact(run_id, artifact_path)
        return path.is_file() or path.is_dir()

    def recent_job_run_tags(
        self, experiment: str, match: Mapping[str, str], tag: str, max_runs: int
    ) -> list[str | None]:
        """The value of ``tag`` on the newest ``max_runs`` active runs of ``experiment`` whose tags
        equal ``match``, newest first (empty when the experiment does not exist)."""
        clauses = "".join(
            " AND EXISTS (SELECT 1 FROM tags m WHERE m.run_uuid = r.run_uuid AND m.key = ? AND m.value = ?)"
            for _ in match
        )
        values = [item for pair in match.items() for item in pair]
        with self._read() as conn:
            rows = conn.execute(
                "SELECT (SELECT value FROM tags t WHERE t.run_uuid = r.run_uuid AND t.key = ?) "
                "FROM runs r JOIN experiments e ON e.experiment_id = r.experiment_id "
                "WHERE e.workspace = ? AND e.name = ? AND r.lifecycle_stage = 'active'" + clauses +
                " ORDER BY r.start_time DESC, r.run_uuid LIMIT ?",
                (tag, WORKSPACE, experiment, *values, max_runs),
            ).fetchall()
        return [row[0] for row in rows]

    def record_job_run(
        self,
        experiment: str,
        run_name: str,
        tags: Mapping[str, str],
        params: Mapping[str, object],
        metrics: Mapping[str, float],
        texts: Mapping[str, str],
    ) -> tuple[str, str]:
        """As :meth:`Registry.record_job_run`: the run's rows in one transaction, its text files,
        then FINISHED (FAILED when a file cannot be written)."""
        all_tags = {RUN_NAME_TAG: run_name, **tags}
        param_values = {key: str(value) for key, value in params.items()}
        metric_values = {metric_key(key): float(value) for key, value in metrics.items()}
        if not within_mlflow_limits(all_tags, param_values, metric_values, texts) or (
            tags.get(RUN_NAME_TAG, run_name) != run_name
        ):
            return super().record_job_run(experiment, run_name, tags, params, metrics, texts)
        run_id = uuid.uuid4().hex
        now = _now_ms()
        with self._write() as conn:
            found = conn.execute(
                "SELECT experiment_id, artifact_location, lifecycle_stage FROM experiments "
                "WHERE workspace = ? AND name = ?",
                (WORKSPACE, experiment),
            ).fetchone()
            if found is None:
                location = self.settings.effective_artifact_root
                cursor = conn.execute(
                    "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, "
                    "last_update_time, workspace) VALUES (?, ?, 'active', ?, ?, ?)",
                    (experiment, location, now, now, WORKSPACE),
                )
                found = (cursor.lastrowid, location, "active")
            experiment_id, location, stage = found
            root = _local_path(location)
            if stage != "active" or root is None:
                conn.rollback()
                return super().record_job_run(experiment, run_name, tags, params, metrics, texts)
            artifact_uri = f"{str(location).rstrip('/')}/{run_id}/artifacts"
            conn.execute(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
                "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id, deleted_time) "
                "VALUES (?, ?, 'UNKNOWN', '', '', ?, 'RUNNING', ?, NULL, '', 'active', ?, ?, NULL)",
                (run_id, run_name, all_tags.get(USER_TAG, "unknown"), now, artifact_uri, experiment_id),
            )
            conn.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                             [(key, value, run_id) for key, value in all_tags.items()])
            conn.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                             [(key, value, run_id) for key, value in param_values.items()])
            stored = [(key, *_metric_value(value)) for key, value in metric_values.items()]
            conn.executemany(
                "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, 0, ?)",
                [(key, value, now, run_id, is_nan) for key, value, is_nan in stored],
            )
            conn.executemany(
                "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, 0, ?, ?)",
                [(key, value, now, is_nan, run_id) for key, value, is_nan in stored],
            )
        status = "FAILED"
        try:
            folder = Path(root, run_id, "artifacts")
            for path, text in texts.items():
                relative = relative_artifact_path(path)
                assert relative is not None  # checked by within_mlflow_limits
                target = folder.joinpath(*relative.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
            status = "FINISHED"
        finally:
            with self._write() as conn:
                conn.execute("UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?",
                             (status, _now_ms(), run_id))
        return run_id, self.run_url(str(experiment_id), run_id)


@contextmanager
def closing_connection(database: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the store that waits for other writers, closed on exit (autocommit off:
    writes happen in :meth:`SqliteRegistry._write`'s transactions)."""
    conn = sqlite3.connect(database, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def _version(conn: sqlite3.Connection, name: str, number: int) -> VersionRecord | None:
    row = conn.execute(
        "SELECT name, version, run_id, source, storage_location, status, current_stage, description, "
        "creation_time, last_updated_time FROM model_versions "
        "WHERE workspace = ? AND name = ? AND version = ? AND current_stage != ?",
        (WORKSPACE, name, number, DELETED_STAGE),
    ).fetchone()
    if row is None:
        return None
    tags = dict(conn.execute(
        "SELECT key, value FROM model_version_tags WHERE workspace = ? AND name = ? AND version = ?",
        (WORKSPACE, name, number),
    ).fetchall())
    aliases = [alias for (alias,) in conn.execute(
        "SELECT alias FROM registered_model_aliases WHERE workspace = ? AND name = ? AND version = ? ORDER BY alias",
        (WORKSPACE, name, number),
    )]
    return VersionRecord(
        name=str(row[0]), version=int(row[1]), run_id=row[2] or None, source=str(row[3] or ""),
        storage_location=row[4], status=str(row[5] or ""), current_stage=str(row[6] or ""), description=row[7],
        creation_timestamp=row[8], last_updated_timestamp=row[9], tags=tags, aliases=aliases,
    )

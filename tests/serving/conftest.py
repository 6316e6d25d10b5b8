"""Fixtures of the model-server tests: real `python -m mlops_serving` processes on loopback ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from support.serving import CANCER, SERVER_SETTINGS, WINE, Keys, Server, start_server


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """Two keys (the CLI that prints them is exercised by the reload test)."""
    from mlops_serving.auth import generate_key

    keys_file = tmp_path_factory.mktemp("keys") / "api-keys"
    full, full_line = generate_key()
    limited, limited_line = generate_key([CANCER])
    keys_file.write_text(f"# test keys\n{full_line}\n{limited_line}\n")
    return Keys(keys_file, full, limited)


@pytest.fixture(scope="session")
def server(trained_store: Any, keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Both example models, API-key auth, prediction log in the store's local folder."""
    workdir = tmp_path_factory.mktemp("server")
    live_keys = workdir / "api-keys"
    live_keys.write_text(keys.file.read_text())
    env = trained_store.env(**SERVER_SETTINGS, MLOPS_SERVING_API_KEYS_FILE=str(live_keys))
    started = start_server(workdir, env, key=keys.full)
    yield started
    started.stop()
    assert started.stopped_cleanly(), started.log.read_text()


@pytest.fixture(scope="session")
def wine_model(trained_store: Any) -> Any:
    """The registered wine-classifier v1, loaded in the test process, to compute expected answers."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlops_platform.registry import Registry
    from mlops_platform.settings import PlatformSettings

    # explicit URI: a session fixture runs before the per-test environment clean-up, and an earlier
    # in-process Registry may have left MLFLOW_TRACKING_URI in os.environ (mlflow.set_tracking_uri does)
    home = trained_store.home
    registry = Registry(PlatformSettings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}"))
    return registry.load_sklearn_model(WINE, 1)

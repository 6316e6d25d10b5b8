"""Fixtures of the promotion-bot tests: a registry with wine-classifier v1 and v2, a GitOps repository
with a bare remote, and a fake GitHub API on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .fakehost import FakeGitHub, serve
from .promote_support import MODEL, GitOps, make_gitops, train


@pytest.fixture(scope="package")
def registry_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """wine-classifier v1 and v2 (both gate=passed; v2 holds `staging`), v3 registered without a gate tag."""
    workdir = tmp_path_factory.mktemp("promote-store")
    home = workdir / ".mlops"
    for overrides in ((), ("estimator.params.n_estimators=150",)):
        result = train(workdir, home, *overrides)
        assert result.returncode == 0, result.stdout + result.stderr
    from mlflow import MlflowClient

    uri = f"sqlite:///{home}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    v1 = client.get_model_version(MODEL, "1")
    source = client.get_model_version_download_uri(MODEL, "1")
    v3 = client.create_model_version(MODEL, source, run_id=v1.run_id)  # no gate tag at all
    assert str(v3.version) == "3"
    assert str(client.get_model_version_by_alias(MODEL, "staging").version) == "2"
    return home


@pytest.fixture
def gitops(tmp_path: Path) -> GitOps:
    return make_gitops(tmp_path / "gitops")


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serve(FakeGitHub()) as fake:
        yield fake


@pytest.fixture
def bot_env(
    monkeypatch: pytest.MonkeyPatch, registry_home: Path, gitops: GitOps, github: FakeGitHub
) -> dict[str, str]:
    """The bot's environment: the package registry, the clone, the fake GitHub API."""
    for name in ("GITHUB_TOKEN", "GITHUB_REPOSITORY", "MLOPS_PROMETHEUS_URL"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "MLOPS_HOME": str(registry_home),
        "MLOPS_PROMOTE_REPO_PATH": str(gitops.clone),
        "MLOPS_PROMOTE_API_URL": github.url,
        "MLOPS_PROMOTE_REPOSITORY": f"{github.owner}/{github.name}",
        "MLOPS_PROMOTE_TOKEN": "ghs_secret-token-value",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env

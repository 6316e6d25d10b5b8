"""Fixtures of the promotion-bot tests: a registry with wine-classifier v1 and v2, a GitOps repository
with a bare remote, and a fake GitHub API on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fakehost import FakeGitHub, serve
from support.promote import MODEL, GitOps, make_gitops, train


@pytest.fixture(scope="package")
def registry_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """wine-classifier v1 and v2 (both gate=passed; v2 holds `candidate`), v3 registered without a gate tag.

    v2 also runs in staging: it holds the `staging` alias and the promotion tags that
    ``mlops promote --to staging --finalize`` writes when its staging rollout completed (the Git side
    of that is :func:`make_gitops`: staging pins v2, production v1).
    """
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
    assert str(client.get_model_version_by_alias(MODEL, "candidate").version) == "2"
    assert {k: str(v) for k, v in client.get_registered_model(MODEL).aliases.items()} == {"candidate": "2"}
    client.set_registered_model_alias(MODEL, "staging", "2")
    for key, value in {
        "promotion.staging.pr": "#1",
        "promotion.staging.commit": "0" * 40,
        "promotion.staging.finalized_at": "2026-01-01T00:00:00Z",
    }.items():
        client.set_model_version_tag(MODEL, "2", key, value)
    return home


@pytest.fixture
def gitops(tmp_path: Path) -> GitOps:
    return make_gitops(tmp_path / "gitops")


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serve(FakeGitHub()) as fake:
        yield fake


@pytest.fixture
def bot_env(monkeypatch: pytest.MonkeyPatch, registry_home: Path, gitops: GitOps, github: FakeGitHub) -> dict[str, str]:
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

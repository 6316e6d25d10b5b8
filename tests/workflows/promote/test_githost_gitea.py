"""The Gitea client (the kind cluster's in-cluster Git host) against a local Gitea API, and the bot through it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from support.fakegitea import FakeGitea, serve
from support.promote import MODEL, PROD_RELEASE, GitOps, git

from mlops_platform.errors import ConfigError
from mlops_workflows.cli import main
from mlops_workflows.promote.githost import Gitea, make_host, upsert
from mlops_workflows.promote.settings import PromotionSettings

BRANCH = "promote/wine-classifier/production/v2"


@pytest.fixture
def gitea() -> Iterator[FakeGitea]:
    with serve(FakeGitea()) as fake:
        yield fake


def client(fake: FakeGitea, token: str | None = None) -> Gitea:
    return Gitea(fake.api_url, f"{fake.owner}/{fake.name}", SecretStr(token or fake.token), timeout=5)


def test_upsert_opens_then_updates_with_labels_by_id(gitea: FakeGitea) -> None:
    host = client(gitea)
    pr, action = upsert(host, BRANCH, "main", "t1", "b1", ["promotion", "env:production"])
    assert (action, pr.number, pr.state, pr.merged) == ("opened", 1, "open", False)
    assert pr.url == "http://gitea.example/mlops/mlops-platform/pulls/1"
    pr, action = upsert(host, BRANCH, "main", "t2", "b2", ["promotion", "model:m"])
    assert (action, pr.number) == ("updated", 1)
    assert gitea.pulls[1]["title"] == "t2" and gitea.pulls[1]["body"] == "b2"
    assert [label["name"] for label in gitea.pulls[1]["labels"]] == ["promotion", "env:production", "model:m"]
    # each label is created once, then found by name and added by id
    assert sorted(r.body["name"] for r in gitea.calls("POST", "/labels") if "issues" not in r.path) == [
        "env:production",
        "model:m",
        "promotion",
    ]
    assert all(isinstance(i, int) for r in gitea.calls("POST", "/issues/1/labels") for i in r.body["labels"])
    assert all(r.headers["authorization"] == f"token {gitea.token}" for r in gitea.requests)
    assert all(gitea.token not in r.path and gitea.token not in str(r.query) for r in gitea.requests)


def test_branches_are_matched_across_pages_and_other_bases_are_ignored(gitea: FakeGitea) -> None:
    for i in range(gitea.max_limit + 7):
        gitea.add_pull(f"feature/{i}", "main")
    gitea.add_pull(BRANCH, "release-1")  # same branch, other base: not ours
    ours = gitea.add_pull(BRANCH, "main")
    host = client(gitea)
    found = host.find_open(BRANCH, "main")
    assert found is not None and found.number == ours
    assert [r.query["page"] for r in gitea.calls("GET", "/pulls")] == ["1", "2"]
    assert host.find_open("promote/none/staging/v1", "main") is None


def test_a_duplicate_on_a_race_updates_the_existing_one(gitea: FakeGitea) -> None:
    host = client(gitea)

    class Racing(Gitea):
        first = True

        def find_open(self, branch: str, base: str):  # type: ignore[no-untyped-def]
            if self.first:  # another run opens it between this run's list and its create
                self.first = False
                gitea.add_pull(branch, base, "opened by the other run")
                return None
            return super().find_open(branch, base)

    racing = Racing(host.http.api_url, f"{gitea.owner}/{gitea.name}", SecretStr(gitea.token), timeout=5)
    pr, action = upsert(racing, BRANCH, "main", "mine", "body", [])
    assert (action, pr.number, len(gitea.pulls)) == ("updated", 1, 1)
    assert gitea.pulls[1]["title"] == "mine"
    # the create met Gitea's 409 "already exists", then the open one was found and updated
    assert [r.method for r in gitea.requests] == ["POST", "GET", "PATCH"]


def test_merged_and_closed_pull_requests_are_told_apart(gitea: FakeGitea) -> None:
    host = client(gitea)
    first = gitea.add_pull(BRANCH, "main")
    gitea.close(first)
    second = gitea.add_pull(BRANCH, "main")
    gitea.merge(second, "a" * 40)
    merged, closed = host.find_merged(BRANCH, "main"), host.find_closed(BRANCH, "main")
    assert merged is not None and (merged.number, merged.merge_commit) == (second, "a" * 40)
    assert closed is not None and closed.number == first and not closed.merged
    assert host.find_open(BRANCH, "main") is None


def test_a_refused_token_names_the_variable_and_never_the_token(gitea: FakeGitea) -> None:
    with pytest.raises(ConfigError) as info:
        upsert(client(gitea, token="wrong-token-value"), BRANCH, "main", "t", "b", [])
    assert "401" in str(info.value) and "MLOPS_PROMOTE_TOKEN" in str(info.value)
    assert "wrong-token-value" not in str(info.value) and info.value.exit_code == 2


def test_gitea_needs_its_api_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLOPS_PROMOTE_API_URL", "GITHUB_TOKEN", "GITHUB_REPOSITORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLOPS_PROMOTE_HOST", "gitea")
    monkeypatch.setenv("MLOPS_PROMOTE_REPOSITORY", "mlops/mlops-platform")
    monkeypatch.setenv("MLOPS_PROMOTE_TOKEN", "t")
    with pytest.raises(ConfigError, match="MLOPS_PROMOTE_API_URL is not set: a Gitea host has no public default"):
        make_host(PromotionSettings())
    monkeypatch.setenv("MLOPS_PROMOTE_API_URL", "http://gitea.local:3000/api/v1")
    assert isinstance(make_host(PromotionSettings()), Gitea)


def test_the_bot_opens_and_updates_its_pull_request_on_gitea(
    bot_env: dict[str, str],
    gitops: GitOps,
    gitea: FakeGitea,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MLOPS_PROMOTE_HOST", "gitea")
    monkeypatch.setenv("MLOPS_PROMOTE_API_URL", gitea.api_url)
    monkeypatch.setenv("MLOPS_PROMOTE_REPOSITORY", f"{gitea.owner}/{gitea.name}")
    monkeypatch.setenv("MLOPS_PROMOTE_TOKEN", gitea.token)
    code = main(["promote", MODEL, "--to", "production"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert git(gitops.remote, "diff", "--name-only", "main", BRANCH) == PROD_RELEASE
    (pr,) = gitea.pulls.values()
    assert (pr["head"]["ref"], pr["base"]["ref"], pr["state"]) == (BRANCH, "main", "open")
    assert pr["title"] == "promote(wine-classifier): v1 -> v2 [production]"
    assert "| accuracy |" in pr["body"] and "**evaluation gate**: v2 has gate=passed" in pr["body"]
    assert {label["name"] for label in pr["labels"]} == {"promotion", "env:production", "model:wine-classifier"}
    assert f"pull request opened: {pr['html_url']}" in out
    assert gitea.token not in out + err

    code = main(["promote", MODEL, "--to", "production"])
    out, err = capsys.readouterr()
    assert code == 0 and "pull request updated" in out
    assert len(gitea.pulls) == 1 and len(gitea.calls("POST", "/pulls")) == 1

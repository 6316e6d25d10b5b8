"""After a merge: `mlops promote --finalize`, `mlops models history`, `mlops rollback`, `--revert-aborted`."""

from __future__ import annotations

import pytest
from support.fakehost import FakeGitHub
from support.promote import MODEL, PROD_RELEASE, GitOps, git

from mlops_workflows.cli import main

PROMOTE_BRANCH = "promote/wine-classifier/production/v2"
ROLLBACK_BRANCH = "rollback/wine-classifier/production/v1"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def land_v2(capsys: pytest.CaptureFixture[str], gitops: GitOps, github: FakeGitHub, squash: bool = False) -> str:
    code, out, err = run(capsys, "promote", MODEL, "--to", "production")
    assert code == 0, out + err
    merged = gitops.merge(PROMOTE_BRANCH, 1, squash=squash)
    github.merge(1, merged)
    return merged


def test_finalize_moves_the_alias_to_what_git_pins_and_records_the_pull_request(
    bot_env: dict[str, str], gitops: GitOps, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{bot_env['MLOPS_HOME']}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias(MODEL, "production", "1")
    merged = land_v2(capsys, gitops, github)

    code, out, err = run(capsys, "promote", MODEL, "--to", "production", "--finalize")
    assert code == 0, out + err
    assert "alias 'production' of wine-classifier: v1 -> v2" in out
    assert str(client.get_model_version_by_alias(MODEL, "production").version) == "2"
    tags = client.get_model_version(MODEL, "2").tags
    assert tags["promotion.production.pr"] == "https://github.example/mlops-gitops/mlops-platform/pull/1"
    assert tags["promotion.production.commit"] == merged
    assert tags["promotion.production.landed_at"] and tags["promotion.production.finalized_at"]
    assert str(client.get_model_version_by_alias(MODEL, "staging").version) == "2"  # untouched
    client.set_registered_model_alias(MODEL, "production", "1")  # leave the shared store as found


def test_finalize_without_an_api_reads_the_pull_request_from_the_squash_commit(
    bot_env: dict[str, str],
    gitops: GitOps,
    github: FakeGitHub,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow import MlflowClient

    squashed = land_v2(capsys, gitops, github, squash=True)
    monkeypatch.delenv("MLOPS_PROMOTE_TOKEN")
    code, out, err = run(capsys, "promote", MODEL, "--to", "production", "--finalize")
    assert code == 0, out + err
    uri = f"sqlite:///{bot_env['MLOPS_HOME']}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    tags = client.get_model_version(MODEL, "2").tags
    assert tags["promotion.production.pr"] == "#1" and tags["promotion.production.commit"] == squashed
    client.set_registered_model_alias(MODEL, "production", "1")


def test_history_lists_which_version_ran_when(
    bot_env: dict[str, str], gitops: GitOps, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = git(gitops.remote, "rev-list", "--max-parents=0", "main")
    gitops.person_commit("README.md", "unrelated\n", "docs: unrelated change")
    merged = land_v2(capsys, gitops, github)
    code, out, err = run(capsys, "models", "history", MODEL, "--env", "production")
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0] == "wine-classifier in production (from Git history, oldest first)"
    assert lines[1].split()[:4] == ["VERSION", "IMAGE", "FROM", "UNTIL"]
    assert lines[2].startswith("v1 ") and seed[:12] in lines[2] and "seed: serving manifests" in lines[2]
    assert lines[3].startswith("v2 ") and merged[:12] in lines[3] and "now" in lines[3]
    assert "Merge pull request #1" in lines[3]
    assert len(lines) == 4  # the unrelated commit is not a change of version

    code, out, _ = run(capsys, "models", "history", MODEL, "--env", "staging")
    assert code == 0 and len(out.splitlines()) == 3 and out.splitlines()[2].startswith("v2 ")


def test_rollback_opens_the_pull_request_back_to_the_previous_version(
    bot_env: dict[str, str], gitops: GitOps, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "rollback", MODEL, "--env", "production", "--reason", "latency")
    assert code == 3 and "no version before v1" in err  # nothing to go back to yet

    land_v2(capsys, gitops, github)
    code, out, err = run(capsys, "rollback", MODEL, "--env", "production", "--reason", "p95 latency doubled")
    assert code == 0, out + err
    assert ROLLBACK_BRANCH in gitops.remote_branches()
    assert git(gitops.remote, "diff", "--name-only", "main", ROLLBACK_BRANCH) == PROD_RELEASE
    assert "MODEL_VERSION=1\n" in gitops.remote_file(ROLLBACK_BRANCH, PROD_RELEASE)
    message = git(gitops.remote, "log", "-1", "--format=%B", ROLLBACK_BRANCH)
    assert message.startswith("rollback(wine-classifier): v2 -> v1 [production]")
    assert "Reason: p95 latency doubled" in message
    created = github.calls("POST", "/pulls")[-1]
    assert created.body["title"] == "rollback(wine-classifier): v2 -> v1 [production]"
    assert "**Reason:** p95 latency doubled" in created.body["body"]
    assert "rollback" in github.calls("POST", "/labels")[-1].body["labels"]

    code, _, err = run(capsys, "rollback", MODEL, "--env", "production", "--to-version", "2", "--reason", "x")
    assert code == 3 and "production already runs v2" in err


def test_revert_aborted_opens_the_revert_once_and_only_while_git_pins_the_bad_version(
    bot_env: dict[str, str], gitops: GitOps, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    land_v2(capsys, gitops, github)
    hook = ("promote", "--revert-aborted", "--rollout", "models-production/wine-classifier-model-server")
    code, out, err = run(capsys, *hook, "--version", "2")
    assert code == 0, out + err
    created = github.calls("POST", "/pulls")[-1]
    assert created.body["head"] == ROLLBACK_BRANCH
    assert "the canary of v2 in production was aborted by Argo Rollouts" in created.body["body"]
    assert "MODEL_VERSION=1\n" in gitops.remote_file(ROLLBACK_BRANCH, PROD_RELEASE)

    # the hook fires again: the open pull request is left as it is (no update, no second one)
    writes = len(github.calls("POST")) + len(github.calls("PATCH"))
    code, out, _ = run(capsys, *hook, "--version", "2")
    assert code == 0 and "the revert pull request is already open" in out and "nothing changed" in out
    assert len(github.calls("POST")) + len(github.calls("PATCH")) == writes
    assert len([p for p in github.pulls.values() if p["head"]["ref"] == ROLLBACK_BRANCH]) == 1

    # once the revert landed, a late notification about v2 does nothing
    number = max(github.pulls)
    github.merge(number, gitops.merge(ROLLBACK_BRANCH, number))
    code, out, _ = run(capsys, *hook, "--version", "2")
    assert code == 0 and "no longer pins v2 (Git pins v1): nothing to revert" in out

    code, _, err = run(capsys, "promote", "--revert-aborted", "--rollout", "default/something")
    assert code == 2 and "is not models-<env>/<model>-model-server" in err

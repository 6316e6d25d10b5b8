"""`mlops promote`: gates, the one-line commit, the pull request, idempotency, races, dry run."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.fakehost import FakeGitHub
from support.promote import BOT_EMAIL, MODEL, PROD_RELEASE, REPO, STAGING_RELEASE, GitOps, git

from mlops_platform.exit_status import ExitStatus
from mlops_workflows.cli import main

BRANCH = "promote/wine-classifier/production/v2"
TITLE = "promote(wine-classifier): v1 -> v2 [production]"


def promote(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["promote", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_promotion_opens_one_pull_request_with_a_one_line_change(
    bot_env: dict[str, str], gitops: GitOps, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    main_before = gitops.remote_branches()["main"]
    code, out, err = promote(capsys, MODEL, "--to", "production")
    assert code == 0, out + err
    branches = gitops.remote_branches()
    assert branches["main"] == main_before  # never onto main
    assert set(branches) == {"main", BRANCH}

    # exactly one line of the production release file changes; comments and other keys stay
    diff = git(gitops.remote, "diff", "--unified=0", "main", BRANCH)
    assert git(gitops.remote, "diff", "--name-only", "main", BRANCH) == PROD_RELEASE
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == ["-MODEL_VERSION=1", "+MODEL_VERSION=2"]
    before = gitops.remote_file("main", PROD_RELEASE)
    assert gitops.remote_file(BRANCH, PROD_RELEASE) == before.replace("MODEL_VERSION=1\n", "MODEL_VERSION=2\n")
    assert git(gitops.remote, "rev-parse", f"{BRANCH}^") == main_before

    # the commit: bot identity, conventional title, lineage trailers
    author = git(gitops.remote, "log", "-1", "--format=%an <%ae>|%cn <%ce>", BRANCH)
    assert author == f"mlops-promotion-bot <{BOT_EMAIL}>|mlops-promotion-bot <{BOT_EMAIL}>"
    message = git(gitops.remote, "log", "-1", "--format=%B", BRANCH)
    assert message.splitlines()[0] == TITLE
    from mlflow import MlflowClient

    uri = f"sqlite:///{bot_env['MLOPS_HOME']}/mlflow.db"
    v2 = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version(MODEL, "2")
    assert f"MLflow-Run: {v2.run_id}" in message
    assert f"Dataset-Digest: {v2.tags['dataset.digest']}" in message
    assert f"Source-Commit: {v2.tags['git.commit']}" in message
    assert "Previous-Version: 1" in message

    # the pull request: created once, labelled, with a model card
    (created,) = github.calls("POST", "/pulls")
    assert created.body["head"] == BRANCH and created.body["base"] == "main" and created.body["title"] == TITLE
    assert created.headers["authorization"] == "Bearer ghs_secret-token-value"
    assert created.headers["x-github-api-version"] == "2022-11-28"
    (labelled,) = github.calls("POST", "/issues/1/labels")
    assert set(labelled.body["labels"]) == {"promotion", "env:production", "model:wine-classifier"}
    card = created.body["body"]
    assert "| accuracy |" in card and "| log_loss |" in card and "delta" in card
    assert "**evaluation gate**: v2 has gate=passed" in card
    assert "**previous environment**: v2 runs in staging: Git pins it, alias 'staging' holds it" in card
    assert v2.tags["dataset.digest"] in card and v2.tags["git.commit"] in card
    assert "send 10% of the traffic to the new version" in card  # read from the rendered Rollout
    assert (
        "analysis wine-classifier-model-request-count, wine-classifier-model-success-rate" in card
        and "min-success-ratio=0.99" in card
    )
    assert "pull request opened: https://github.example/" in out
    assert "ghs_secret" not in out + err


def test_running_twice_keeps_one_branch_and_one_pull_request(
    bot_env: dict[str, str], gitops: GitOps, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    assert promote(capsys, MODEL, "--to", "production")[0] == 0
    first = gitops.remote_branches()[BRANCH]
    code, out, _ = promote(capsys, MODEL, "--to", "production")
    assert code == 0
    assert "is up to date" in out and "pull request updated" in out
    assert gitops.remote_branches()[BRANCH] == first
    assert len(github.calls("POST", "/pulls")) == 1 and len(github.pulls) == 1
    assert len(github.calls("PATCH", "/pulls/1")) == 1


def test_stale_branch_is_rebuilt_on_the_new_base_with_a_lease(
    bot_env: dict[str, str], gitops: GitOps, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    assert promote(capsys, MODEL, "--to", "production")[0] == 0
    old_tip = gitops.remote_branches()[BRANCH]
    new_main = gitops.person_commit("README.md", "changed meanwhile\n", "docs: meanwhile on main")
    code, out, _ = promote(capsys, MODEL, "--to", "production")
    assert code == 0 and "is stale" in out
    tip = gitops.remote_branches()[BRANCH]
    assert tip != old_tip and git(gitops.remote, "rev-parse", f"{tip}^") == new_main
    assert git(gitops.remote, "diff", "--name-only", "main", BRANCH) == PROD_RELEASE
    assert len(github.pulls) == 1 and github.pulls[1]["state"] == "open"
    # main itself only ever moved forward
    for old, new, ref in gitops.updates():
        if ref == "refs/heads/main" and set(old) != {"0"}:
            assert git(gitops.remote, "merge-base", "--is-ancestor", old, new, check=False) == ""


def test_someone_elses_commits_on_the_branch_are_never_overwritten(
    bot_env: dict[str, str], gitops: GitOps, capsys: pytest.CaptureFixture[str]
) -> None:
    assert promote(capsys, MODEL, "--to", "production")[0] == 0
    gitops.person_commit("README.md", "a reviewer's fix\n", "fix on the promotion branch", branch=BRANCH)
    gitops.person_commit("README.md", "main moved\n", "main moved")
    tip = gitops.remote_branches()[BRANCH]
    code, _, err = promote(capsys, MODEL, "--to", "production")
    assert code == ExitStatus.CONFLICT
    assert "commits the bot did not make (Pat Person <pat@example.com>)" in err
    assert gitops.remote_branches()[BRANCH] == tip


def test_rejected_push_is_retried_then_reported(
    bot_env: dict[str, str], gitops: GitOps, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    gitops.reject_next(1)
    code, out, err = promote(capsys, MODEL, "--to", "production")
    assert code == 0, out + err
    assert "push rejected (attempt 1/3)" in out and BRANCH in gitops.remote_branches()

    gitops.reject_next(10)
    code, out, err = promote(capsys, "wine-classifier", "--to", "staging", "--version", "1")
    assert code == ExitStatus.CONFLICT
    assert "rejected 3 times; nothing was forced" in err
    assert "promote/wine-classifier/staging/v1" not in gitops.remote_branches()


def test_staging_direct_commit_races_main_and_only_fast_forwards(
    bot_env: dict[str, str],
    gitops: GitOps,
    github: FakeGitHub,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlops_workflows.promote.git_ops import Workspace

    monkeypatch.setenv("MLOPS_PROMOTE_STAGING_DIRECT_COMMIT", "true")
    # production always goes through a pull request, whatever the staging setting
    assert promote(capsys, MODEL, "--to", "production")[0] == 0
    assert BRANCH in gitops.remote_branches() and len(github.pulls) == 1
    github.requests.clear()

    original = Workspace.push
    raced: list[str] = []

    def push_after_a_race(
        self: Workspace, sha: str, branch: str, lease: str | None = None, guarded: bool = False
    ) -> None:
        if not raced:  # someone lands an image bump on main between the bot's fetch and its push
            text = gitops.remote_file("main", STAGING_RELEASE).replace("IMAGE_TAG=0.1.0", "IMAGE_TAG=0.2.0")
            raced.append(gitops.person_commit(STAGING_RELEASE, text, "release: image 0.2.0 in staging"))
        original(self, sha, branch, lease, guarded)

    monkeypatch.setattr(Workspace, "push", push_after_a_race)
    code, out, err = promote(capsys, MODEL, "--to", "staging", "--version", "1")
    assert code == 0, out + err
    assert "push rejected (attempt 1/3)" in out and "committed" in out
    assert set(gitops.remote_branches()) == {"main", BRANCH}  # no new branch, no pull request
    assert github.requests == []
    text = gitops.remote_file("main", STAGING_RELEASE)
    assert "MODEL_VERSION=1\n" in text and "IMAGE_TAG=0.2.0\n" in text  # the person's change is kept
    assert git(gitops.remote, "rev-parse", "main^") == raced[0]
    for old, new, ref in gitops.updates():
        if ref == "refs/heads/main" and set(old) != {"0"}:
            assert git(gitops.remote, "merge-base", "--is-ancestor", old, new, check=False) == ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--version", "3"), "[evaluation gate] v3 has no gate tag, not gate=passed"),
        (("--version", "9"), "[registered] model 'wine-classifier' has no version 9"),
        (("--from-alias", "champion"), "[registered] model 'wine-classifier' has no alias 'champion'"),
    ],
)
def test_gate_refusals_write_nothing(
    bot_env: dict[str, str],
    gitops: GitOps,
    github: FakeGitHub,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    expected: str,
) -> None:
    before = gitops.remote_branches()
    code, out, err = promote(capsys, MODEL, "--to", "production", *args)
    assert code == 3
    assert expected in err and "refused" in err
    assert "[FAIL]" in out
    assert gitops.remote_branches() == before and github.requests == []


def test_promoting_what_git_already_pins_is_a_successful_no_op(
    bot_env: dict[str, str], gitops: GitOps, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    before = gitops.remote_branches()
    code, out, err = promote(capsys, MODEL, "--to", "staging", "--version", "2")
    assert code == 0, err
    assert "main already pins wine-classifier v2 in staging" in out and "nothing to do" in out
    assert gitops.remote_branches() == before and github.requests == []


def test_production_needs_the_staging_rollout_finalized(
    bot_env: dict[str, str],
    gitops: GitOps,
    github: FakeGitHub,
    capsys: pytest.CaptureFixture[str],
    registry_home: Path,
) -> None:
    """Git's staging release pins v2, but until its staging rollout is finalized production refuses."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{registry_home}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.delete_model_version_tag(MODEL, "2", "promotion.staging.finalized_at")
    try:
        code, _, err = promote(capsys, MODEL, "--to", "production")
        assert code == 3 and "its staging rollout was not finalized" in err
        client.delete_registered_model_alias(MODEL, "staging")
        code, _, err = promote(capsys, MODEL, "--to", "production", "--version", "2")
        assert code == 3 and "does not hold alias 'staging' (no version holds it)" in err
        text = gitops.remote_file("main", STAGING_RELEASE).replace("MODEL_VERSION=2", "MODEL_VERSION=1")
        gitops.person_commit(STAGING_RELEASE, text, "staging: back to v1")
        code, _, err = promote(capsys, MODEL, "--to", "production", "--version", "2")
        assert code == 3 and "Git's staging release pins v1, not v2; promote to staging first" in err
        assert github.requests == []
    finally:
        client.set_registered_model_alias(MODEL, "staging", "2")
        client.set_model_version_tag(MODEL, "2", "promotion.staging.finalized_at", "2026-01-01T00:00:00Z")


def test_first_promotion_brings_the_first_version_into_an_unpinned_environment(
    bot_env: dict[str, str], gitops: GitOps, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fresh clone pins nothing: the first pull request pins the version and lets pods run."""
    kustomization = PROD_RELEASE.replace("release.env", "kustomization.yaml")
    gitops.person_commit(PROD_RELEASE, (REPO / PROD_RELEASE).read_text(), "fresh: production pins nothing")
    gitops.person_commit(kustomization, (REPO / kustomization).read_text(), "fresh: unpinned component")
    assert "MODEL_VERSION=\n" in gitops.remote_file("main", PROD_RELEASE)
    code, out, err = promote(capsys, MODEL, "--to", "production")
    assert code == 0, out + err
    assert "[ok] not already running: production runs no version yet (Git pins none)" in out
    pr = github.open_pulls()[0]
    assert pr["title"] == "promote(wine-classifier): none -> v2 [production]"
    changed = git(gitops.remote, "diff", "--name-only", f"main..{BRANCH}").splitlines()
    assert sorted(changed) == sorted([PROD_RELEASE, kustomization])
    assert "MODEL_VERSION=2\n" in gitops.remote_file(BRANCH, PROD_RELEASE)
    assert "components/unpinned" not in gitops.remote_file(BRANCH, kustomization)
    assert "components/unpinned" in gitops.remote_file("main", kustomization)


def test_dry_run_prints_the_diff_and_card_and_writes_nothing(
    bot_env: dict[str, str], gitops: GitOps, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    before = gitops.remote_branches()
    local_before = git(gitops.clone, "for-each-ref", "refs/heads")
    status_before = git(gitops.clone, "status", "--porcelain")
    code, out, err = promote(capsys, MODEL, "--to", "production", "--dry-run")
    assert code == 0, err
    assert f"--- a/{PROD_RELEASE}" in out and "-MODEL_VERSION=1" in out and "+MODEL_VERSION=2" in out
    assert f"pull request: {TITLE}" in out and "### What happens on merge" in out
    assert gitops.remote_branches() == before and github.requests == []
    assert git(gitops.clone, "for-each-ref", "refs/heads") == local_before
    assert git(gitops.clone, "status", "--porcelain") == status_before


def test_dry_run_needs_no_token(
    bot_env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLOPS_PROMOTE_TOKEN")
    assert promote(capsys, MODEL, "--to", "production", "--dry-run")[0] == 0
    code, _, err = promote(capsys, MODEL, "--to", "production")
    assert code == 2 and "MLOPS_PROMOTE_TOKEN (or GITHUB_TOKEN) is not set" in err


def test_the_working_tree_of_the_clone_is_never_touched(
    bot_env: dict[str, str], gitops: GitOps, capsys: pytest.CaptureFixture[str]
) -> None:
    local = gitops.clone / PROD_RELEASE
    local.write_text(local.read_text() + "# a local edit in progress\n")
    head = git(gitops.clone, "rev-parse", "HEAD")
    branch = git(gitops.clone, "branch", "--show-current")
    assert promote(capsys, MODEL, "--to", "production")[0] == 0
    assert local.read_text().endswith("# a local edit in progress\n")
    assert git(gitops.clone, "rev-parse", "HEAD") == head and git(gitops.clone, "branch", "--show-current") == branch
    assert "a local edit" not in gitops.remote_file(BRANCH, PROD_RELEASE)


def test_outside_a_clone_the_error_names_the_variable(
    bot_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLOPS_PROMOTE_REPO_PATH")
    nowhere = tmp_path / "not-a-clone"
    nowhere.mkdir()
    monkeypatch.chdir(nowhere)
    code, _, err = promote(capsys, MODEL, "--to", "production")
    assert code == 2 and "MLOPS_PROMOTE_REPO_PATH" in err

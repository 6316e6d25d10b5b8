"""Where a trained model came from (issue 14): the commit, dirty flag, branch and remote of the config's
working tree, read with git once per run (they also give the run's ``mlflow.source.git.*`` tags);
remote credentials never reach a tag."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlops_workflows.training.lineage import UNKNOWN, git_state, without_credentials


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "models").mkdir(parents=True)
    _git(root, "init", "-q", "-b", "trunk")
    _git(root, "config", "user.email", "t@example.com")
    _git(root, "config", "user.name", "t")
    (root / "models" / "m.yaml").write_text("model_name: m\n")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "one")
    return root


def test_a_clean_checkout_without_a_remote(repo: Path) -> None:
    state = git_state(repo / "models" / "m.yaml")
    assert state.commit == _git(repo, "rev-parse", "HEAD")
    assert (state.dirty, state.branch, state.remote_url) == (False, "trunk", None)
    assert state.label == state.commit[:12]


def test_changes_to_tracked_files_make_it_dirty_untracked_files_do_not(repo: Path) -> None:
    (repo / "notes.txt").write_text("untracked\n")
    assert git_state(repo / "models").dirty is False
    (repo / "models" / "m.yaml").write_text("model_name: changed\n")
    state = git_state(repo / "models" / "m.yaml")
    assert state.dirty is True and state.label.endswith("(uncommitted changes)")
    _git(repo, "add", ".")  # staged counts too
    assert git_state(repo / "models" / "m.yaml").dirty is True


def test_a_detached_head_has_no_branch(repo: Path) -> None:
    head = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "--detach", head)
    state = git_state(repo / "models" / "m.yaml")
    assert (state.commit, state.branch) == (head, None)


def test_the_first_remote_is_recorded_without_credentials(repo: Path) -> None:
    _git(repo, "remote", "add", "origin", "https://bot:s3cr3t-token@git.example.com/team/models.git")
    _git(repo, "remote", "add", "backup", "git@git.example.com:team/models.git")
    state = git_state(repo / "models" / "m.yaml")
    assert state.remote_url == "https://git.example.com/team/models.git"
    assert "s3cr3t" not in repr(state)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:token@host.example/org/repo.git", "https://host.example/org/repo.git"),
        ("https://token@host.example:8443/org/repo", "https://host.example:8443/org/repo"),
        ("ssh://git@host.example/org/repo.git", "ssh://host.example/org/repo.git"),
        ("git@host.example:org/repo.git", "git@host.example:org/repo.git"),  # scp-like: no credentials
        ("https://host.example/org/repo.git", "https://host.example/org/repo.git"),
        ("/srv/git/repo.git", "/srv/git/repo.git"),
    ],
)
def test_credentials_are_dropped_from_remote_urls(url: str, expected: str) -> None:
    assert without_credentials(url) == expected


def test_outside_a_work_tree_or_before_the_first_commit_nothing_is_known(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert git_state(plain) == UNKNOWN
    empty = tmp_path / "empty"
    empty.mkdir()
    _git(empty, "init", "-q")
    (empty / "m.yaml").write_text("x: 1\n")
    assert git_state(empty / "m.yaml") == UNKNOWN
    assert UNKNOWN.commit == "unknown" and not UNKNOWN.dirty

"""The bot given a hostile release pin on main: exit 2, one line naming the problem, no traceback,
nothing pushed and no call to the Git host."""

from __future__ import annotations

import shutil

import pytest
from support.fakehost import FakeGitHub
from support.promote import MODEL, GitOps, git

from mlops_workflows.cli import main

RELEASE = f"serving/manifests/models/{MODEL}/production/release.env"


def _land(gitops: GitOps, content: bytes | None) -> None:
    """A person's commit on main making the production pin ``content`` (None: a folder)."""
    git(gitops.person, "fetch", "-q", "origin")
    git(gitops.person, "checkout", "-q", "-B", "main", "origin/main")
    target = gitops.person / RELEASE
    target.unlink()
    if content is None:
        target.mkdir()
        (target / "MODEL_VERSION").write_text("2\n")
    else:
        target.write_bytes(content)
    git(gitops.person, "add", "-A")
    git(gitops.person, "commit", "-q", "-m", "hostile pin")
    git(gitops.person, "push", "-q", "origin", "HEAD:refs/heads/main")
    shutil.rmtree(gitops.person / RELEASE, ignore_errors=True)


@pytest.mark.parametrize(("content", "expected"), [
    (b"MODEL_VERSION=1\nIMAGE_TAG=caf\xe9\n", "not UTF-8"),
    (None, "folder"),
    (b"MODEL_VERSION=99999999999999999999999\nIMAGE_TAG=0.1.0\n", "is not a version number"),
    (b"MODEL_VERSION=" + b"9" * 5000 + b"\nIMAGE_TAG=0.1.0\n", "is not a version number"),
], ids=["not-utf8", "folder", "beyond-sqlite-integer", "5000-digits"])
def test_hostile_release_pin_exits_2_and_writes_nothing(
    bot_env: dict[str, str], gitops: GitOps, github: FakeGitHub, capsys: pytest.CaptureFixture[str],
    content: bytes | None, expected: str,
) -> None:
    _land(gitops, content)
    before = gitops.remote_branches()
    code = main(["promote", MODEL, "--to", "production"])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1 and expected in err, err
    assert gitops.remote_branches() == before
    assert github.requests == []

"""The Git smart-HTTP server of the tests: authenticated clone and push work, others are refused."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

from support.githttp import git_http_server
from support.procs import require_binary


def _git(*args: str, cwd: Path, header: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    if header is not None:
        env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader", "GIT_CONFIG_VALUE_0": header})
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def _basic(user: str, password: str) -> str:
    return "Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_push_needs_the_right_credentials(tmp_path: Path) -> None:
    require_binary("git")
    root = tmp_path / "srv"
    root.mkdir()
    assert _git("init", "--bare", "-b", "main", "repo.git", cwd=root).returncode == 0
    work = tmp_path / "work"
    work.mkdir()
    assert _git("init", "-b", "main", cwd=work).returncode == 0
    (work / "f.txt").write_text("one\n")
    assert _git("add", "f.txt", cwd=work).returncode == 0
    assert _git("commit", "-m", "one", cwd=work).returncode == 0

    with git_http_server(root, "x-access-token", "s3cret") as srv:
        url = srv.repo_url("repo.git")
        refused = _git("push", url, "main", cwd=work)
        assert refused.returncode != 0
        assert "Authentication failed" in refused.stderr or "could not read Username" in refused.stderr
        wrong = _git("push", url, "main", cwd=work, header=_basic("x-access-token", "wrong"))
        assert wrong.returncode != 0
        assert [r.status for r in srv.requests] and all(r.status == 401 for r in srv.requests)

        pushed = _git("push", url, "main", cwd=work, header=_basic("x-access-token", "s3cret"))
        assert pushed.returncode == 0, pushed.stderr
        assert [r.status for r in srv.pushes()] == [200]

        clone = _git("clone", url, str(tmp_path / "clone"), cwd=tmp_path, header=_basic("x-access-token", "s3cret"))
        assert clone.returncode == 0, clone.stderr
        assert (tmp_path / "clone" / "f.txt").read_text() == "one\n"
        anonymous = _git("clone", url, str(tmp_path / "anon"), cwd=tmp_path)
        assert anonymous.returncode != 0

    head = subprocess.run(
        ["git", "--git-dir", str(root / "repo.git"), "rev-parse", "main"], capture_output=True, text=True
    )
    assert head.returncode == 0 and len(head.stdout.strip()) == 40

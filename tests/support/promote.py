"""Helpers of the promotion-bot tests: a GitOps repository with a bare remote, Git as a person."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WINE_CONFIG = REPO / "workflows" / "models" / "wine-classifier.yaml"
MODEL = "wine-classifier"
PROD_RELEASE = "serving/manifests/models/wine-classifier/production/release.env"
STAGING_RELEASE = "serving/manifests/models/wine-classifier/staging/release.env"
BOT_EMAIL = "mlops-promotion-bot@users.noreply.github.com"
PERSON = {
    "GIT_AUTHOR_NAME": "Pat Person",
    "GIT_AUTHOR_EMAIL": "pat@example.com",
    "GIT_COMMITTER_NAME": "Pat Person",
    "GIT_COMMITTER_EMAIL": "pat@example.com",
}

# A pre-receive hook: rejects while reject-count > 0, then records every ref update.
HOOK = """#!/bin/sh
n=$(cat "$GIT_DIR/reject-count" 2>/dev/null || echo 0)
if [ "$n" -gt 0 ]; then
  echo $((n - 1)) > "$GIT_DIR/reject-count"
  echo "test hook: rejected" >&2
  exit 1
fi
while read old new ref; do echo "$old $new $ref" >> "$GIT_DIR/updates.log"; done
exit 0
"""


def git(cwd: Path, *args: str, check: bool = True) -> str:
    env = {**os.environ, **PERSON, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd)}
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env)
    if check and out.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {out.stderr}")
    return out.stdout.strip()


@dataclass(frozen=True)
class GitOps:
    """A bare remote (the Git host), the bot's clone, and a person's clone."""

    root: Path
    remote: Path
    clone: Path
    person: Path

    def remote_branches(self) -> dict[str, str]:
        out = git(self.remote, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
        return dict(line.split(" ", 1) for line in out.splitlines() if line)

    def remote_file(self, ref: str, path: str) -> str:
        return git(self.remote, "show", f"{ref}:{path}") + "\n"

    def updates(self) -> list[tuple[str, str, str]]:
        log = self.remote / "updates.log"
        if not log.exists():
            return []
        return [tuple(line.split()) for line in log.read_text().splitlines()]  # type: ignore[misc]

    def reject_next(self, count: int) -> None:
        (self.remote / "reject-count").write_text(str(count))

    def person_commit(self, path: str, content: str, message: str, branch: str = "main") -> str:
        git(self.person, "fetch", "-q", "origin")
        git(self.person, "checkout", "-q", "-B", branch, f"origin/{branch}")
        target = self.person / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        git(self.person, "add", path)
        git(self.person, "commit", "-q", "-m", message)
        git(self.person, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
        return git(self.person, "rev-parse", "HEAD")

    def merge(self, branch: str, number: int, squash: bool = False) -> str:
        """Land a pull request the way a Git host does (a merge commit, or a squash)."""
        git(self.person, "fetch", "-q", "origin")
        git(self.person, "checkout", "-q", "-B", "main", "origin/main")
        if squash:
            git(self.person, "merge", "-q", "--squash", f"origin/{branch}")
            title = git(self.person, "log", "-1", "--format=%s", f"origin/{branch}")
            git(self.person, "commit", "-q", "-m", f"{title} (#{number})")
        else:
            git(
                self.person,
                "merge",
                "-q",
                "--no-ff",
                f"origin/{branch}",
                "-m",
                f"Merge pull request #{number} from {branch}",
            )
        git(self.person, "push", "-q", "origin", "HEAD:refs/heads/main")
        return git(self.person, "rev-parse", "HEAD")


def pin_in_seed(seed: Path, release: str, version: int) -> None:
    """What the first promotion of ``release``'s environment did: pin ``version``, drop the unpinned component."""
    from mlops_workflows.promote.release import drop_unpinned, kustomization_path, set_model_version

    path = seed / release
    path.write_text(set_model_version(path.read_text(), version))
    kustomization = seed / kustomization_path(release)
    kustomization.write_text(drop_unpinned(kustomization.read_text()))


def make_gitops(root: Path) -> GitOps:
    """A repository whose content is the real serving/manifests tree, pushed to a local bare remote."""
    root.mkdir(parents=True, exist_ok=True)
    remote, seed, clone, person = root / "remote.git", root / "seed", root / "clone", root / "person"
    git(root, "init", "-q", "--bare", "-b", "main", str(remote))
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(HOOK)
    hook.chmod(0o755)
    git(root, "init", "-q", "-b", "main", str(seed))
    shutil.copytree(REPO / "serving" / "manifests", seed / "serving" / "manifests")
    # A repository that has been running for a while: staging runs v2, production v1.
    for release, version in ((STAGING_RELEASE, 2), (PROD_RELEASE, 1)):
        pin_in_seed(seed, release, version)
    (seed / "README.md").write_text("GitOps repository (test copy)\n")
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", "seed: serving manifests")
    git(seed, "remote", "add", "origin", str(remote))
    git(seed, "push", "-q", "origin", "main")
    git(root, "clone", "-q", str(remote), str(clone))
    git(root, "clone", "-q", str(remote), str(person))
    return GitOps(root, remote, clone, person)


def train(workdir: Path, home: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLOPS_", "AWS_"))}
    env["MLOPS_HOME"] = str(home)
    args = [sys.executable, "-m", "mlops_workflows.cli", "train", "--config", str(WINE_CONFIG)]
    for item in overrides:
        args += ["--set", item]
    return subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)

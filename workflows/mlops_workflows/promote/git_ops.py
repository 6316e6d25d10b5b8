"""Git plumbing for the bot (GitPython): read and commit trees without touching anyone's working tree.

The bot builds its commits from the fetched base commit with a temporary index (no checkout, no
stash, no branch switch in the clone it is given), pushes them by object id, and guards every
update of a promotion branch with ``--force-with-lease`` on the value it just read from the
remote. The base branch is only ever fast-forwarded: no force, ever.
"""

from __future__ import annotations

import io
import logging
import re
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_platform.errors import ConfigError, ServiceUnavailableError

if TYPE_CHECKING:
    from git import Commit, Repo

log = logging.getLogger(__name__)

_REJECTED = re.compile(
    r"\[rejected\]|\[remote rejected\]|stale info|fetch first|non-fast-forward|failed to update ref|"
    r"cannot lock ref|incorrect old value"
)
_URL_CREDENTIALS = re.compile(r"(://)[^/@\s]+@")


class PushRejected(Exception):
    """The remote refused the update (it moved, or a hook declined); retry after a fetch."""


def _clean(text: str) -> str:
    """Git's stderr without credentials embedded in remote URLs."""
    return _URL_CREDENTIALS.sub(r"\1***@", text).strip()


def toplevel(start: Path) -> Path:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=start, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ConfigError(
            f"{start} is not inside a Git clone of the GitOps repository; run the bot in one or set "
            "MLOPS_PROMOTE_REPO_PATH"
        ) from exc
    return Path(out.stdout.strip())


@dataclass(frozen=True)
class Identity:
    name: str
    email: str


class Workspace:
    """One clone, one remote, one base branch."""

    def __init__(self, path: Path, remote: str, base: str) -> None:
        from git import InvalidGitRepositoryError, NoSuchPathError, Repo

        try:
            self.repo: Repo = Repo(path)
        except (InvalidGitRepositoryError, NoSuchPathError) as exc:
            raise ConfigError(f"MLOPS_PROMOTE_REPO_PATH={path} is not a Git clone") from exc
        self.path = path
        self.remote = remote
        self.base = base
        if remote not in [r.name for r in self.repo.remotes]:
            raise ConfigError(f"the clone at {path} has no remote {remote!r} (MLOPS_PROMOTE_REMOTE)")

    # -- reading the remote -------------------------------------------------------------------

    def _git(self, *args: str) -> str:
        from git import GitCommandError

        try:
            return str(self.repo.git.execute(["git", *args]))
        except GitCommandError as exc:
            raise ServiceUnavailableError(
                f"git {args[0]} against remote {self.remote!r} failed: {_clean(str(exc.stderr))}"
            ) from exc

    def remote_sha(self, branch: str) -> str | None:
        """The commit ``branch`` points at on the remote now, or None when it does not exist."""
        out = self._git("ls-remote", "--heads", self.remote, f"refs/heads/{branch}")
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref == f"refs/heads/{branch}":
                return sha
        return None

    def fetch(self, branch: str) -> Commit:
        """Fetch ``branch`` into its remote-tracking ref and return its commit."""
        tracking = f"refs/remotes/{self.remote}/{branch}"
        self._git("fetch", "--quiet", "--no-tags", self.remote, f"+refs/heads/{branch}:{tracking}")
        return self.repo.commit(tracking)

    def fetch_base(self) -> Commit:
        return self.fetch(self.base)

    def tracking_ref(self) -> str:
        return f"{self.remote}/{self.base}"

    # -- trees and commits --------------------------------------------------------------------

    @staticmethod
    def read(commit: Commit, path: str) -> str | None:
        try:
            blob = commit.tree / path
        except KeyError:
            return None
        if blob.type != "blob":
            raise ConfigError(f"{path} is a folder at {commit.hexsha[:12]}; expected a file")
        data: bytes = blob.data_stream.read()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{path} at {commit.hexsha[:12]} is not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from exc

    def commit_file(self, parent: Commit, path: str, content: str, message: str, who: Identity) -> Commit:
        """A new commit on ``parent`` whose tree differs in ``path`` only (no working tree involved)."""
        from git import Actor, Commit, IndexFile
        from git.index.typ import BaseIndexEntry
        from gitdb import IStream  # type: ignore[import-untyped]

        try:
            mode = (parent.tree / path).mode
        except KeyError:
            mode = 0o100644
        data = content.encode("utf-8")
        stream = self.repo.odb.store(IStream("blob", len(data), io.BytesIO(data)))
        index = IndexFile.from_tree(self.repo, parent)
        index.add([BaseIndexEntry((mode, stream.binsha, 0, path))], write=False)
        tree = index.write_tree()
        actor = Actor(who.name, who.email)
        return Commit.create_from_tree(
            self.repo, tree, message, parent_commits=[parent], head=False, author=actor, committer=actor
        )

    @staticmethod
    def changed_paths(commit: Commit) -> list[str]:
        parent = commit.parents[0] if commit.parents else None
        if parent is None:
            return []
        return sorted({str(d.a_path or d.b_path) for d in parent.diff(commit)})

    def commits_between(self, base: Commit, tip: Commit) -> list[Commit]:
        return list(self.repo.iter_commits(f"{base.hexsha}..{tip.hexsha}"))

    # -- pushing ----------------------------------------------------------------------------

    def push(self, sha: str, branch: str, lease: str | None = None, guarded: bool = False) -> None:
        """Push ``sha`` to ``branch``.

        ``guarded`` (promotion branches only): replace the branch if and only if the remote still
        holds ``lease`` (None: the branch must not exist). Unguarded pushes (the base branch) are
        plain fast-forwards; the remote rejects anything else.
        """
        from git import GitCommandError

        args = ["git", "push", "--porcelain"]
        if guarded:
            args.append(f"--force-with-lease=refs/heads/{branch}:{lease or ''}")
        args += [self.remote, f"{sha}:refs/heads/{branch}"]
        try:
            self.repo.git.execute(args)
        except GitCommandError as exc:
            text = _clean(f"{exc.stdout}\n{exc.stderr}")
            if _REJECTED.search(text):
                raise PushRejected(text) from exc
            raise ServiceUnavailableError(f"git push to {self.remote!r} failed: {text}") from exc

    # -- history ----------------------------------------------------------------------------

    def first_parent_history(self, rev: str, path: str) -> Iterator[Commit]:
        """Commits of ``rev``'s first-parent line that changed ``path``, newest first."""
        yield from self.repo.iter_commits(rev, paths=path, first_parent=True)

    def export(self, commit: Commit, subdir: str, dest: Path) -> Path:
        """Extract ``subdir`` of ``commit`` into ``dest`` (read-only; for rendering)."""
        buffer = io.BytesIO()
        self.repo.archive(buffer, commit.hexsha, path=subdir)
        buffer.seek(0)
        with tarfile.open(fileobj=buffer) as tar:
            tar.extractall(dest, filter="data")
        return dest / subdir

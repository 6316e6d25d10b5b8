"""Git plumbing for the bot (GitPython): read and commit trees without touching anyone's working tree.

The bot builds its commits from the fetched base commit with a temporary index (no checkout, no
stash, no branch switch in the clone it is given), pushes them by object id, and guards every
update of a promotion branch with ``--force-with-lease`` on the value it just read from the
remote. The base branch is only ever fast-forwarded: no force, ever.

**Transport credentials.** Over HTTPS the bot authenticates every git command it runs with the
token it already has (:class:`GitCredentials`): a credential helper given to that one git process
in its environment (``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``, no config file written), which
answers ``get`` with a username and the token read from the same process environment. Other
helpers are reset for that command, so no ``store`` helper can write the token to disk; the token
is never put into a URL, a file or a log line, and prompts are off (``GIT_TERMINAL_PROMPT=0``).
Plain ``http://`` remotes get the token only on loopback (it never crosses a network in clear
text); SSH remotes use the deploy key of the environment's SSH setup and get no token.
"""

from __future__ import annotations

import io
import ipaddress
import logging
import re
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import SecretStr

from mlops_platform.errors import ConfigError, ServiceUnavailableError

if TYPE_CHECKING:
    from git import Commit, Repo

log = logging.getLogger(__name__)

_REJECTED = re.compile(
    r"\[rejected\]|\[remote rejected\]|stale info|fetch first|non-fast-forward|failed to update ref|"
    r"cannot lock ref|incorrect old value"
)
_URL_CREDENTIALS = re.compile(r"(://)[^/@\s]+@")


_AUTH_FAILED = re.compile(
    r"Authentication failed|could not read Username|could not read Password|"
    r"The requested URL returned error: 40[13]|Invalid username or password|terminal prompts disabled"
)

# The credential helper: a shell function git runs with "get", "store" or "erase"; only "get"
# answers, from the environment of the git process (never from a file).
_HELPER = (
    '!f() { test "$1" = get || return 0; '
    'printf \'username=%s\\npassword=%s\\n\' "$MLOPS_GIT_CREDENTIAL_USERNAME" "$MLOPS_GIT_CREDENTIAL_PASSWORD"; }; f'
)


@dataclass(frozen=True)
class GitCredentials:
    """Who the bot is on the Git host's HTTPS transport: a username and the API token."""

    username: str
    token: SecretStr

    def env_for(self, url: str) -> dict[str, str]:
        """Environment of one git process talking to remote ``url`` (empty when no token may go there)."""
        if not token_may_travel_to(url):
            return {"GIT_TERMINAL_PROMPT": "0"}
        return {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "credential.helper",
            "GIT_CONFIG_VALUE_0": "",  # an empty value resets the list: no other helper sees the token
            "GIT_CONFIG_KEY_1": "credential.helper",
            "GIT_CONFIG_VALUE_1": _HELPER,
            "MLOPS_GIT_CREDENTIAL_USERNAME": self.username,
            "MLOPS_GIT_CREDENTIAL_PASSWORD": self.token.get_secret_value(),
        }


def token_may_travel_to(url: str) -> bool:
    """True for https:// remotes, and for http:// ones on a loopback address."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    if parts.scheme != "http":
        return False
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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

    def __init__(self, path: Path, remote: str, base: str, credentials: GitCredentials | None = None) -> None:
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
        self.credentials = credentials

    def _env(self) -> dict[str, str]:
        """The environment of a git command that talks to the remote (see the module docstring)."""
        if self.credentials is None:
            return {"GIT_TERMINAL_PROMPT": "0"}
        url = str(self.repo.remotes[self.remote].url)
        return self.credentials.env_for(url)

    def _auth_error(self, text: str) -> ConfigError | None:
        if not _AUTH_FAILED.search(text):
            return None
        how = (
            "the token (MLOPS_PROMOTE_TOKEN or GITHUB_TOKEN) was rejected or lacks contents: write"
            if self.credentials is not None
            else "no token is set (MLOPS_PROMOTE_TOKEN or GITHUB_TOKEN)"
        )
        return ConfigError(f"the Git host refused the bot on remote {self.remote!r}: {how}")

    # -- reading the remote -------------------------------------------------------------------

    def _git(self, *args: str) -> str:
        from git import GitCommandError

        try:
            return str(self.repo.git.execute(["git", *args], env=self._env()))
        except GitCommandError as exc:
            auth = self._auth_error(str(exc.stderr))
            if auth is not None:
                raise auth from exc
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
        return self.commit_files(parent, {path: content}, message, who)

    def commit_files(self, parent: Commit, files: dict[str, str], message: str, who: Identity) -> Commit:
        """A new commit on ``parent`` whose tree differs in ``files`` only (no working tree involved)."""
        from git import Actor, Commit, IndexFile
        from git.index.typ import BaseIndexEntry
        from gitdb import IStream  # type: ignore[import-untyped]

        index = IndexFile.from_tree(self.repo, parent)
        entries = []
        for path, content in files.items():
            try:
                mode = (parent.tree / path).mode
            except KeyError:
                mode = 0o100644
            data = content.encode("utf-8")
            stream = self.repo.odb.store(IStream("blob", len(data), io.BytesIO(data)))
            entries.append(BaseIndexEntry((mode, stream.binsha, 0, path)))
        index.add(entries, write=False)
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
            self.repo.git.execute(args, env=self._env())
        except GitCommandError as exc:
            text = _clean(f"{exc.stdout}\n{exc.stderr}")
            auth = self._auth_error(text)
            if auth is not None:
                raise auth from exc
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

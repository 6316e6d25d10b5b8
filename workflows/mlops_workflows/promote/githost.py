"""Pull (merge) requests through the Git host's REST API: GitHub, GitLab merge requests, or Gitea.

GitHub (REST API, version 2022-11-28):

- ``GET  /repos/{owner}/{repo}/pulls?head={owner}:{branch}&base={base}&state=open`` finds the open one;
- ``POST /repos/{owner}/{repo}/pulls`` creates it (422 "A pull request already exists" on a race);
- ``PATCH /repos/{owner}/{repo}/pulls/{number}`` updates title and body;
- ``POST /repos/{owner}/{repo}/issues/{number}/labels`` adds labels (pull requests are issues);
- ``GET  /repos/{owner}/{repo}/pulls?head=...&state=closed`` finds the merged one for ``--finalize``.

GitLab (API v4): ``/projects/{path}/merge_requests`` with ``source_branch``/``target_branch``,
``PUT .../merge_requests/{iid}``; labels travel with create and update; 409 on a duplicate.

Gitea (API v1, e.g. the in-cluster server of the kind bootstrap): ``GET /repos/{owner}/{repo}/pulls?state=``
pages through the pull requests (Gitea has no ``head`` filter, so the branch is matched here);
``POST .../pulls`` creates one (409 "pull request already exists" on a duplicate); ``PATCH .../pulls/{index}``
updates it; labels are ids on Gitea: ``GET/POST .../labels`` finds or creates them, then
``POST .../issues/{index}/labels`` adds them. The token goes in ``Authorization: token ...``.

Errors become messages a person can act on: 401 names the token variable, 403/429 with
``x-ratelimit-remaining: 0`` says when the limit resets, other 403s name the permissions the token
needs. The token is sent in a header and never appears in a message.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from pydantic import SecretStr

from mlops_platform.errors import ConfigError, ServiceUnavailableError
from mlops_workflows.promote.errors import GitHostError
from mlops_workflows.promote.settings import PromotionSettings

log = logging.getLogger(__name__)

GITHUB_API_VERSION = "2022-11-28"
TOKEN_SCOPES = "contents: write and pull requests: write on this repository"


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    title: str
    state: str
    merged: bool = False
    merge_commit: str | None = None


class AlreadyExists(Exception):
    """The host refused to create a second pull request for the same branch."""


class GitHost(Protocol):
    kind: str

    def find_open(self, branch: str, base: str) -> PullRequest | None: ...

    def create(self, branch: str, base: str, title: str, body: str, labels: list[str]) -> PullRequest: ...

    def update(self, pr: PullRequest, title: str, body: str, labels: list[str]) -> PullRequest: ...

    def find_merged(self, branch: str, base: str) -> PullRequest | None: ...

    def find_closed(self, branch: str, base: str) -> PullRequest | None: ...


class _Http:
    def __init__(self, api_url: str, token: SecretStr, timeout: float, auth_headers: dict[str, str], what: str):
        self.api_url = api_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self._auth_headers = auth_headers
        self.what = what

    def request(self, method: str, path: str, query: dict[str, str] | None = None, body: Any = None) -> Any:
        url = f"{self.api_url}{path}"
        if query:
            url += "?" + urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json", "User-Agent": "mlops-promotion-bot", **self._auth_headers}
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        log.debug("%s %s", method, url)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise self._error(method, path, exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceUnavailableError(
                f"{self.what} API unreachable at {self.api_url} ({reason}); check MLOPS_PROMOTE_API_URL"
            ) from exc
        return json.loads(raw) if raw else None

    def _error(self, method: str, path: str, exc: urllib.error.HTTPError) -> Exception:
        try:
            payload = json.loads(exc.read() or b"{}")
        except (ValueError, OSError):
            payload = {}
        message = str(payload.get("message", "")) if isinstance(payload, dict) else ""
        details = _details(payload)
        status = exc.code
        headers = exc.headers
        what = f"{self.what} API {method} {path}"
        if status == 401:
            return ConfigError(
                f"{what}: 401 {message or 'unauthorized'}: the token was rejected; check MLOPS_PROMOTE_TOKEN "
                "(or GITHUB_TOKEN): it may be expired, revoked or for another host"
            )
        remaining = headers.get("x-ratelimit-remaining") if headers else None
        retry_after = headers.get("retry-after") if headers else None
        if status == 429 or (status == 403 and (remaining == "0" or retry_after or "rate limit" in message.lower())):
            return ServiceUnavailableError(f"{what}: rate limited ({status} {message}); {_rate_limit_hint(headers)}")
        if status == 403:
            return ConfigError(
                f"{what}: 403 {message or 'forbidden'}: the token lacks permission; it needs {TOKEN_SCOPES}"
            )
        if status == 404:
            return ConfigError(
                f"{what}: 404 {message or 'not found'}: the repository does not exist or the token cannot see it; "
                "check MLOPS_PROMOTE_REPOSITORY"
            )
        if status in (409, 422) and "already exist" in f"{message} {details}".lower():
            return AlreadyExists(f"{message} {details}".strip())
        if status >= 500:
            return ServiceUnavailableError(f"{what}: {status} {message or 'server error'}")
        return GitHostError(f"{what}: {status} {message} {details}".strip())


def _details(payload: Any) -> str:
    if not isinstance(payload, dict):
        return ""
    errors = payload.get("errors")
    if isinstance(errors, list):
        parts = [str(e.get("message") or e.get("code") or e) if isinstance(e, dict) else str(e) for e in errors]
        return "; ".join(parts)
    if isinstance(errors, str):
        return errors
    message = payload.get("message")
    if isinstance(message, list):
        return "; ".join(str(m) for m in message)
    return ""


def _rate_limit_hint(headers: Any) -> str:
    if headers is None:
        return "wait a minute before retrying"
    retry_after = headers.get("retry-after")
    if retry_after:
        return f"retry after {retry_after} s"
    reset = headers.get("x-ratelimit-reset")
    if reset and reset.isdigit():
        when = datetime.fromtimestamp(int(reset), tz=UTC)
        wait = max(0, int((when - datetime.now(tz=UTC)).total_seconds()))
        return f"the limit resets at {when:%Y-%m-%d %H:%M:%SZ} (in {wait} s)"
    return "wait a minute before retrying"


class GitHub:
    kind = "github"

    def __init__(self, api_url: str, repository: str, token: SecretStr, timeout: float) -> None:
        self.owner, _, self.name = repository.partition("/")
        self.http = _Http(
            api_url,
            token,
            timeout,
            {
                "Authorization": f"Bearer {token.get_secret_value()}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": GITHUB_API_VERSION,
            },
            "GitHub",
        )
        self._base = f"/repos/{quote(self.owner)}/{quote(self.name)}"

    @staticmethod
    def _pr(data: Any) -> PullRequest:
        return PullRequest(
            number=int(data["number"]),
            url=str(data.get("html_url") or data.get("url")),
            title=str(data.get("title", "")),
            state=str(data.get("state", "")),
            merged=bool(data.get("merged_at")),
            merge_commit=data.get("merge_commit_sha"),
        )

    def _list(self, branch: str, base: str, state: str) -> list[PullRequest]:
        query = {"head": f"{self.owner}:{branch}", "base": base, "state": state, "per_page": "10"}
        data = self.http.request("GET", f"{self._base}/pulls", query)
        return [self._pr(item) for item in data or []]

    def find_open(self, branch: str, base: str) -> PullRequest | None:
        found = self._list(branch, base, "open")
        return found[0] if found else None

    def find_merged(self, branch: str, base: str) -> PullRequest | None:
        merged = [pr for pr in self._list(branch, base, "closed") if pr.merged]
        return max(merged, key=lambda pr: pr.number) if merged else None

    def find_closed(self, branch: str, base: str) -> PullRequest | None:
        """The newest pull request of ``branch`` that was closed without merging."""
        closed = [pr for pr in self._list(branch, base, "closed") if not pr.merged]
        return max(closed, key=lambda pr: pr.number) if closed else None

    def _label(self, pr: PullRequest, labels: list[str]) -> None:
        if labels:
            self.http.request("POST", f"{self._base}/issues/{pr.number}/labels", body={"labels": labels})

    def create(self, branch: str, base: str, title: str, body: str, labels: list[str]) -> PullRequest:
        payload = {"title": title, "head": branch, "base": base, "body": body, "maintainer_can_modify": True}
        pr = self._pr(self.http.request("POST", f"{self._base}/pulls", body=payload))
        self._label(pr, labels)
        return pr

    def update(self, pr: PullRequest, title: str, body: str, labels: list[str]) -> PullRequest:
        updated = self._pr(
            self.http.request("PATCH", f"{self._base}/pulls/{pr.number}", body={"title": title, "body": body})
        )
        self._label(updated, labels)
        return updated


class GitLab:
    kind = "gitlab"

    def __init__(self, api_url: str, repository: str, token: SecretStr, timeout: float) -> None:
        self.http = _Http(api_url, token, timeout, {"PRIVATE-TOKEN": token.get_secret_value()}, "GitLab")
        self._base = f"/projects/{quote(repository, safe='')}/merge_requests"

    @staticmethod
    def _mr(data: Any) -> PullRequest:
        return PullRequest(
            number=int(data["iid"]),
            url=str(data.get("web_url", "")),
            title=str(data.get("title", "")),
            state=str(data.get("state", "")),
            merged=data.get("state") == "merged",
            merge_commit=data.get("merge_commit_sha") or data.get("squash_commit_sha"),
        )

    def _list(self, branch: str, base: str, state: str) -> list[PullRequest]:
        query = {"source_branch": branch, "target_branch": base, "state": state}
        return [self._mr(item) for item in self.http.request("GET", self._base, query) or []]

    def find_open(self, branch: str, base: str) -> PullRequest | None:
        found = self._list(branch, base, "opened")
        return found[0] if found else None

    def find_merged(self, branch: str, base: str) -> PullRequest | None:
        found = self._list(branch, base, "merged")
        return max(found, key=lambda pr: pr.number) if found else None

    def find_closed(self, branch: str, base: str) -> PullRequest | None:
        found = self._list(branch, base, "closed")
        return max(found, key=lambda pr: pr.number) if found else None

    def create(self, branch: str, base: str, title: str, body: str, labels: list[str]) -> PullRequest:
        payload = {
            "source_branch": branch,
            "target_branch": base,
            "title": title,
            "description": body,
            "labels": ",".join(labels),
        }
        return self._mr(self.http.request("POST", self._base, body=payload))

    def update(self, pr: PullRequest, title: str, body: str, labels: list[str]) -> PullRequest:
        payload = {"title": title, "description": body, "add_labels": ",".join(labels)}
        return self._mr(self.http.request("PUT", f"{self._base}/{pr.number}", body=payload))


class Gitea:
    kind = "gitea"
    PAGE = 50  # Gitea's default maximum page size
    MAX_PAGES = 20

    def __init__(self, api_url: str, repository: str, token: SecretStr, timeout: float) -> None:
        self.owner, _, self.name = repository.partition("/")
        auth = {"Authorization": f"token {token.get_secret_value()}"}
        self.http = _Http(api_url, token, timeout, auth, "Gitea")
        self._base = f"/repos/{quote(self.owner)}/{quote(self.name)}"

    @staticmethod
    def _pr(data: Any) -> PullRequest:
        return PullRequest(
            number=int(data["number"]),
            url=str(data.get("html_url") or data.get("url") or ""),
            title=str(data.get("title", "")),
            state=str(data.get("state", "")),
            merged=bool(data.get("merged")),
            merge_commit=data.get("merge_commit_sha"),
        )

    def _list(self, branch: str, base: str, state: str) -> list[PullRequest]:
        found: list[PullRequest] = []
        for page in range(1, self.MAX_PAGES + 1):
            query = {"state": state, "page": str(page), "limit": str(self.PAGE)}
            items = self.http.request("GET", f"{self._base}/pulls", query) or []
            for item in items:
                head = (item.get("head") or {}).get("ref")
                target = (item.get("base") or {}).get("ref")
                if head == branch and target == base:
                    found.append(self._pr(item))
            if len(items) < self.PAGE:
                break
        return found

    def find_open(self, branch: str, base: str) -> PullRequest | None:
        found = self._list(branch, base, "open")
        return found[0] if found else None

    def find_merged(self, branch: str, base: str) -> PullRequest | None:
        merged = [pr for pr in self._list(branch, base, "closed") if pr.merged]
        return max(merged, key=lambda pr: pr.number) if merged else None

    def find_closed(self, branch: str, base: str) -> PullRequest | None:
        closed = [pr for pr in self._list(branch, base, "closed") if not pr.merged]
        return max(closed, key=lambda pr: pr.number) if closed else None

    def _label_ids(self, labels: list[str]) -> list[int]:
        if not labels:
            return []
        existing = self.http.request("GET", f"{self._base}/labels", {"limit": str(self.PAGE)}) or []
        ids = {str(item["name"]): int(item["id"]) for item in existing}
        for label in labels:
            if label not in ids:
                created = self.http.request("POST", f"{self._base}/labels", body={"name": label, "color": "#ededed"})
                ids[label] = int(created["id"])
        return [ids[label] for label in labels]

    def _label(self, pr: PullRequest, labels: list[str]) -> None:
        ids = self._label_ids(labels)
        if ids:
            self.http.request("POST", f"{self._base}/issues/{pr.number}/labels", body={"labels": ids})

    def create(self, branch: str, base: str, title: str, body: str, labels: list[str]) -> PullRequest:
        payload = {"title": title, "head": branch, "base": base, "body": body}
        pr = self._pr(self.http.request("POST", f"{self._base}/pulls", body=payload))
        self._label(pr, labels)
        return pr

    def update(self, pr: PullRequest, title: str, body: str, labels: list[str]) -> PullRequest:
        updated = self._pr(
            self.http.request("PATCH", f"{self._base}/pulls/{pr.number}", body={"title": title, "body": body})
        )
        self._label(updated, labels)
        return updated


HOSTS: dict[str, type[GitHub] | type[GitLab] | type[Gitea]] = {"github": GitHub, "gitlab": GitLab, "gitea": Gitea}


def make_host(settings: PromotionSettings) -> GitHost:
    """The configured Git host client; fails fast, naming the variable, when it cannot be built."""
    if not settings.repository:
        raise ConfigError("MLOPS_PROMOTE_REPOSITORY is not set: the bot needs owner/name to open pull requests")
    if settings.token is None or not settings.token.get_secret_value():
        raise ConfigError(
            f"MLOPS_PROMOTE_TOKEN (or GITHUB_TOKEN) is not set: the bot needs a token with {TOKEN_SCOPES}"
        )
    cls = HOSTS[settings.host]
    return cls(settings.effective_api_url, settings.repository, settings.token, settings.api_timeout_s)


def upsert(host: GitHost, branch: str, base: str, title: str, body: str, labels: list[str]) -> tuple[PullRequest, str]:
    """Update the open pull request of ``branch``, or open one: never a second one."""
    existing = host.find_open(branch, base)
    if existing is None:
        try:
            return host.create(branch, base, title, body, labels), "opened"
        except AlreadyExists:
            existing = host.find_open(branch, base)  # someone (another run) opened it meanwhile
            if existing is None:
                raise GitHostError(
                    f"the {host.kind} API says a pull request for {branch} already exists, but none is open "
                    f"against {base}; check the repository's pull requests"
                ) from None
    return host.update(existing, title, body, labels), "updated"

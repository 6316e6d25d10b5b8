"""The local pull-request host: the GitHub REST endpoints the promotion bot calls, over the local bare repository.

Endpoints (JSON, ``Authorization: Bearer <token>`` required), as GitHub answers them:

- ``GET  /repos/{owner}/{repo}/pulls?head={owner}:{branch}&base=&state=open|closed|all``
- ``POST /repos/{owner}/{repo}/pulls`` (422 when an open one exists for the branch)
- ``PATCH /repos/{owner}/{repo}/pulls/{number}`` (title, body, state)
- ``POST /repos/{owner}/{repo}/issues/{number}/labels``
- ``PUT  /repos/{owner}/{repo}/pulls/{number}/merge``: a real merge commit on the base branch of the
  bare repository (``git merge-tree --write-tree``, ``commit-tree``, ``update-ref``; 405 when it
  does not merge cleanly or the pull request is not open), subject ``Merge pull request #N from ...``
  as GitHub writes it.

``GET /`` is a page listing the pull requests (state, branch, title) and ``GET /pull/{number}`` shows
one with its body (the model card). Pull requests are kept in memory and in ``pulls.json``.

The promote tests use the same host without a repository (``bare_repo=None``: a merge records the
commit id it is given), with any bearer token accepted (``token=None``), every request recorded
(:attr:`PullRequestHost.requests`) and failures injected (:meth:`PullRequestHost.fail_next`: the
next matching request gets that status, body and headers, e.g. a rate limit).
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mlops_local.httpd import serve_http


def _now() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Recorded:
    """One request the host answered."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class PullRequestHost:
    bare_repo: Path | None = None  # None: no repository; a merge records the commit id it is given
    token: str | None = None  # None: any bearer token is accepted
    owner: str = "local"
    name: str = "mlops-platform"
    state_file: Path | None = None
    url: str = ""
    html_base: str = ""  # base of the pull requests' html_url (default: this host's URL)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[Recorded] = field(default_factory=list)
    failures: list[tuple[str, str, int, Any, dict[str, str]]] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.name}"

    # -- failure injection and the record ---------------------------------------------------

    def fail_next(self, method: str, path_suffix: str, status: int, body: Any, headers: dict[str, str]) -> None:
        """Answer the next ``method`` request whose path ends with ``path_suffix`` with this instead."""
        self.failures.append((method, path_suffix, status, body, headers))

    def calls(self, method: str, suffix: str = "") -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    def open_pulls(self) -> list[dict[str, Any]]:
        return self.of_state("open")

    def respond(self, rec: Recorded) -> tuple[int, Any, dict[str, str]]:
        """Record ``rec`` and answer it: an injected failure first, else the API."""
        self.requests.append(rec)
        for i, (method, suffix, status, body, headers) in enumerate(self.failures):
            if method == rec.method and rec.path.endswith(suffix):
                del self.failures[i]
                return status, body, headers
        status, body = self.handle(rec.method, rec.path, rec.query, rec.body, rec.headers)
        return status, body, {}

    # -- what a reviewer does ---------------------------------------------------------------

    def merge(self, number: int, sha: str | None = None, reviewer: str = "mlops-lifecycle reviewer") -> str:
        """Merge pull request ``number`` into its base with a merge commit; returns the commit id. Without a
        repository the merge is only recorded, with the commit id ``sha``."""
        if self.bare_repo is None:
            if sha is None:
                raise ValueError("a host without a repository records a merge only with its commit id")
            with self.lock:
                self.pulls[number].update(state="closed", merged=True, merged_at=_now(), merge_commit_sha=sha,
                                          closed_at=_now())
            return sha
        with self.lock:
            pr = self.pulls[number]
            if pr["state"] != "open":
                raise ValueError(f"pull request #{number} is {pr['state']}")
            base, head = pr["base"]["ref"], pr["head"]["ref"]
            env = {**os.environ, "GIT_AUTHOR_NAME": reviewer, "GIT_AUTHOR_EMAIL": "reviewer@mlops.local",
                   "GIT_COMMITTER_NAME": reviewer, "GIT_COMMITTER_EMAIL": "reviewer@mlops.local"}

            def git(*args: str) -> str:
                out = subprocess.run(["git", "-C", str(self.bare_repo), *args], capture_output=True, text=True,
                                     env=env, timeout=60)
                if out.returncode != 0:
                    raise ValueError(f"git {args[0]}: {out.stderr.strip() or out.stdout.strip()}")
                return out.stdout.strip()

            base_sha = git("rev-parse", f"refs/heads/{base}")
            head_sha = git("rev-parse", f"refs/heads/{head}")
            tree = git("merge-tree", "--write-tree", base_sha, head_sha).splitlines()[0]
            message = f"Merge pull request #{number} from {self.owner}/{head}\n\n{pr['title']}"
            commit = git("commit-tree", tree, "-p", base_sha, "-p", head_sha, "-m", message)
            git("update-ref", f"refs/heads/{base}", commit, base_sha)
            pr.update(state="closed", merged=True, merged_at=_now(), merge_commit_sha=commit, closed_at=_now())
            self._save()
            return commit

    def of_state(self, state: str) -> list[dict[str, Any]]:
        return [p for p in self.pulls.values() if state == "all" or p["state"] == state]

    def _save(self) -> None:
        if self.state_file is not None:
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(list(self.pulls.values()), indent=1))
            tmp.replace(self.state_file)

    # -- the API ----------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], body: Any,
               headers: dict[str, str]) -> tuple[int, Any]:
        body = {} if body is None else body
        if not isinstance(body, dict):
            return 400, {"message": "Problems parsing JSON"}
        authorization = headers.get("authorization", "")
        if (authorization != f"Bearer {self.token}") if self.token is not None else not authorization.startswith(
                "Bearer "):
            return 401, {"message": "Requires authentication"}
        base = f"/repos/{self.owner}/{self.name}"
        parts = path.removeprefix(base).strip("/").split("/")
        with self.lock:
            if path == f"{base}/pulls" and method == "GET":
                head, state = query.get("head", ""), query.get("state", "open")
                found = [p for p in self.pulls.values()
                         if (not head or f"{self.owner}:{p['head']['ref']}" == head)
                         and p["base"]["ref"] == query.get("base", p["base"]["ref"])
                         and (state == "all" or p["state"] == state)]
                return 200, found
            if path == f"{base}/pulls" and method == "POST":
                if any(p["head"]["ref"] == body["head"] and p["state"] == "open" for p in self.pulls.values()):
                    message = f"A pull request already exists for {self.owner}:{body['head']}."
                    return 422, {"message": "Validation Failed",
                                 "errors": [{"resource": "PullRequest", "code": "custom", "message": message}]}
                number = len(self.pulls) + 1
                self.pulls[number] = {
                    "number": number, "html_url": f"{self.html_base or self.url}/pull/{number}",
                    "title": body["title"],
                    "body": body.get("body", ""), "state": "open", "head": {"ref": body["head"]},
                    "base": {"ref": body["base"]}, "labels": [], "merged": False, "merged_at": None,
                    "merge_commit_sha": None, "created_at": _now(),
                }
                self._save()
                return 201, self.pulls[number]
            if parts[0] == "pulls" and len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) in self.pulls:
                pr = self.pulls[int(parts[1])]
                if len(parts) == 2 and method == "GET":
                    return 200, pr
                if len(parts) == 2 and method == "PATCH":
                    pr.update({k: v for k, v in body.items() if k in ("title", "body", "state")})
                    self._save()
                    return 200, pr
            if (parts[0] == "issues" and len(parts) == 3 and parts[2] == "labels" and method == "POST"
                    and parts[1].isdigit() and int(parts[1]) in self.pulls):
                pr = self.pulls[int(parts[1])]
                for label in body["labels"]:
                    if label not in [lab["name"] for lab in pr["labels"]]:
                        pr["labels"].append({"name": label})
                self._save()
                return 200, pr["labels"]
        if parts[0] == "pulls" and len(parts) == 3 and parts[2] == "merge" and method == "PUT" and parts[1].isdigit():
            try:
                sha = self.merge(int(parts[1]))
            except (ValueError, KeyError) as exc:
                return 405, {"message": f"Pull Request is not mergeable: {exc}"}
            return 200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}
        return 404, {"message": "Not Found"}

    # -- the page ---------------------------------------------------------------------------

    def page(self, path: str) -> tuple[int, str]:
        with self.lock:
            if path in ("", "/"):
                rows = "".join(
                    f"<tr><td><a href='/pull/{p['number']}'>#{p['number']}</a></td>"
                    f"<td>{'merged' if p.get('merged') else p['state']}</td><td>{html.escape(p['head']['ref'])}</td>"
                    f"<td>{html.escape(p['title'])}</td><td>{html.escape(', '.join(x['name'] for x in p['labels']))}"
                    "</td></tr>"
                    for p in sorted(self.pulls.values(), key=lambda p: -int(p["number"])))
                body = (f"<h1>{html.escape(self.slug)}: pull requests</h1><table border=1 cellpadding=4>"
                        "<tr><th>#</th><th>state</th><th>branch</th><th>title</th><th>labels</th></tr>"
                        f"{rows}</table>")
            elif path.startswith("/pull/") and path[6:].isdigit() and int(path[6:]) in self.pulls:
                p = self.pulls[int(path[6:])]
                state = "merged " + str(p["merge_commit_sha"])[:12] if p.get("merged") else p["state"]
                body = (f"<p><a href='/'>all pull requests</a></p><h1>#{p['number']} {html.escape(p['title'])}</h1>"
                        f"<p>{html.escape(p['head']['ref'])} → {html.escape(p['base']['ref'])} · {state}</p>"
                        f"<pre style='white-space: pre-wrap'>{html.escape(p['body'] or '')}</pre>")
            else:
                return 404, "<p>not found</p>"
        return 200, f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.slug)}</title>" \
                    f"</head><body style='font-family: sans-serif'>{body}</body></html>"


@contextmanager
def serve(host: PullRequestHost) -> Iterator[PullRequestHost]:
    class Handler(BaseHTTPRequestHandler):
        def _do(self) -> None:
            parts = urlsplit(self.path)
            if self.command == "GET" and not parts.path.startswith("/repos/"):
                status, text = host.page(parts.path)
                self._send(status, text.encode(), "text/html; charset=utf-8")
                return
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                self._send(400, b'{"message": "Problems parsing JSON"}', "application/json")
                return
            status, payload, headers = host.respond(Recorded(
                self.command, parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}, body,
                {k.lower(): v for k, v in self.headers.items()}))
            self._send(status, json.dumps(payload).encode(), "application/json", headers)

        def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = _do

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serve_http(Handler) as host.url:
        yield host

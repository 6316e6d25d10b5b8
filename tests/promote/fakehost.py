"""A small GitHub REST API on loopback: the pull-request endpoints the bot calls, in memory, recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from support.loopback import serve_http


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class FakeGitHub:
    owner: str = "mlops-gitops"
    name: str = "mlops-platform"
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    failures: list[tuple[str, str, int, dict[str, Any], dict[str, str]]] = field(default_factory=list)

    def fail_next(
        self, method: str, path_suffix: str, status: int, body: dict[str, Any], headers: dict[str, str]
    ) -> None:
        self.failures.append((method, path_suffix, status, body, headers))

    def calls(self, method: str, suffix: str = "") -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    def merge(self, number: int, sha: str) -> None:
        self.pulls[number].update(state="closed", merged_at="2026-01-01T00:00:00Z", merge_commit_sha=sha)

    def open_pulls(self) -> list[dict[str, Any]]:
        return [p for p in self.pulls.values() if p["state"] == "open"]

    # -- the API ---------------------------------------------------------------------------

    def handle(self, rec: Recorded) -> tuple[int, Any, dict[str, str]]:
        for i, (method, suffix, status, body, headers) in enumerate(self.failures):
            if method == rec.method and rec.path.endswith(suffix):
                del self.failures[i]
                return status, body, headers
        if not rec.headers.get("authorization", "").startswith("Bearer "):
            return 401, {"message": "Requires authentication"}, {}
        base = f"/repos/{self.owner}/{self.name}"
        if rec.path == f"{base}/pulls" and rec.method == "GET":
            head = rec.query.get("head", "")
            state = rec.query.get("state", "open")
            found = [
                p
                for p in self.pulls.values()
                if f"{self.owner}:{p['head']['ref']}" == head
                and p["base"]["ref"] == rec.query.get("base", p["base"]["ref"])
                and (state == "all" or p["state"] == state)
            ]
            return 200, found, {}
        if rec.path == f"{base}/pulls" and rec.method == "POST":
            body = rec.body
            if any(p["head"]["ref"] == body["head"] and p["state"] == "open" for p in self.pulls.values()):
                message = f"A pull request already exists for {self.owner}:{body['head']}."
                errors = [{"resource": "PullRequest", "code": "custom", "message": message}]
                return 422, {"message": "Validation Failed", "errors": errors}, {}
            number = len(self.pulls) + 1
            self.pulls[number] = {
                "number": number,
                "html_url": f"https://github.example/{self.owner}/{self.name}/pull/{number}",
                "title": body["title"],
                "body": body["body"],
                "state": "open",
                "head": {"ref": body["head"]},
                "base": {"ref": body["base"]},
                "labels": [],
                "merged_at": None,
                "merge_commit_sha": None,
            }
            return 201, self.pulls[number], {}
        parts = rec.path.removeprefix(base).strip("/").split("/")
        if parts[0] == "pulls" and len(parts) == 2 and rec.method == "PATCH":
            pr = self.pulls[int(parts[1])]
            pr.update({k: v for k, v in rec.body.items() if k in ("title", "body", "state")})
            return 200, pr, {}
        if parts[0] == "issues" and len(parts) == 3 and parts[2] == "labels" and rec.method == "POST":
            pr = self.pulls[int(parts[1])]
            for label in rec.body["labels"]:
                if label not in [lab["name"] for lab in pr["labels"]]:
                    pr["labels"].append({"name": label})
            return 200, pr["labels"], {}
        return 404, {"message": "Not Found"}, {}


@contextmanager
def serve(fake: FakeGitHub) -> Iterator[FakeGitHub]:
    class Handler(BaseHTTPRequestHandler):
        def _do(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            rec = Recorded(
                self.command,
                parts.path,
                {k: v[0] for k, v in parse_qs(parts.query).items()},
                json.loads(raw) if raw else None,
                {k.lower(): v for k, v in self.headers.items()},
            )
            fake.requests.append(rec)
            status, body, headers = fake.handle(rec)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = _do

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serve_http(Handler) as fake.url:
        yield fake

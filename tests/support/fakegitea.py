"""A small Gitea REST API (v1) on loopback: the pull-request and label endpoints the bot calls, in memory.

Shapes follow Gitea's swagger: a pull request has ``number``, ``html_url``, ``state`` (open/closed),
``merged``, ``merge_commit_sha``, ``head.ref``, ``base.ref`` and ``labels``; labels are referred to by id;
lists are paged with ``page`` and ``limit``; a second open pull request for the same branches is a 409.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from support.fakehost import Recorded
from support.loopback import serve_http


@dataclass
class FakeGitea:
    owner: str = "mlops"
    name: str = "mlops-platform"
    token: str = "gitea-token-value"
    url: str = ""
    max_limit: int = 50
    requests: list[Recorded] = field(default_factory=list)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    labels: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v1"

    def calls(self, method: str, suffix: str = "") -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    def merge(self, number: int, sha: str) -> None:
        self.pulls[number].update(state="closed", merged=True, merge_commit_sha=sha)

    def close(self, number: int) -> None:
        self.pulls[number].update(state="closed")

    def add_pull(self, head: str, base: str, title: str = "someone else's") -> int:
        return int(self._create({"head": head, "base": base, "title": title, "body": ""})["number"])

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        number = len(self.pulls) + 1
        self.pulls[number] = {
            "number": number,
            "html_url": f"http://gitea.example/{self.owner}/{self.name}/pulls/{number}",
            "title": body["title"],
            "body": body.get("body", ""),
            "state": "open",
            "merged": False,
            "merge_commit_sha": None,
            "head": {"ref": body["head"]},
            "base": {"ref": body["base"]},
            "labels": [self.labels[i] for i in body.get("labels") or []],
        }
        return self.pulls[number]

    def handle(self, rec: Recorded) -> tuple[int, Any]:
        if rec.headers.get("authorization") != f"token {self.token}":
            return 401, {"message": "user does not exist", "url": f"{self.url}/api/swagger"}
        base = f"/api/v1/repos/{self.owner}/{self.name}"
        if not rec.path.startswith(base):
            return 404, {"message": "The target couldn't be found.", "url": f"{self.url}/api/swagger"}
        parts = rec.path.removeprefix(base).strip("/").split("/")
        page = int(rec.query.get("page", "1"))
        limit = min(int(rec.query.get("limit", str(self.max_limit))), self.max_limit)
        if parts == ["pulls"] and rec.method == "GET":
            state = rec.query.get("state", "open")
            found = [p for p in self.pulls.values() if state == "all" or p["state"] == state]
            return 200, found[(page - 1) * limit : page * limit]
        if parts == ["pulls"] and rec.method == "POST":
            body = rec.body
            if body.get("head") == body.get("base"):
                return 422, {"message": "Invalid PullRequest: There are no changes between the head and the base"}
            for p in self.pulls.values():
                if p["state"] == "open" and p["head"]["ref"] == body["head"] and p["base"]["ref"] == body["base"]:
                    message = (
                        f"pull request already exists for these targets [id: {p['number']}, "
                        f"head_branch: {body['head']}, base_branch: {body['base']}]"
                    )
                    return 409, {"message": message, "url": f"{self.url}/api/swagger"}
            return 201, self._create(body)
        if parts[0] == "pulls" and len(parts) == 2 and rec.method == "PATCH":
            pr = self.pulls.get(int(parts[1]))
            if pr is None:
                return 404, {"message": "pull request does not exist"}
            pr.update({k: v for k, v in rec.body.items() if k in ("title", "body", "state")})
            return 201, pr
        if parts == ["labels"] and rec.method == "GET":
            return 200, list(self.labels.values())[(page - 1) * limit : page * limit]
        if parts == ["labels"] and rec.method == "POST":
            if any(label["name"] == rec.body["name"] for label in self.labels.values()):
                return 409, {"message": "label already exists"}
            number = len(self.labels) + 1
            self.labels[number] = {"id": number, "name": rec.body["name"], "color": rec.body["color"]}
            return 201, self.labels[number]
        if parts[0] == "issues" and len(parts) == 3 and parts[2] == "labels" and rec.method == "POST":
            pr = self.pulls[int(parts[1])]
            for label_id in rec.body["labels"]:
                if not isinstance(label_id, int) or label_id not in self.labels:
                    return 422, {"message": f"label {label_id!r} does not exist"}
                if label_id not in [label["id"] for label in pr["labels"]]:
                    pr["labels"].append(self.labels[label_id])
            return 200, pr["labels"]
        return 404, {"message": "The target couldn't be found."}


@contextmanager
def serve(fake: FakeGitea) -> Iterator[FakeGitea]:
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
            status, body = fake.handle(rec)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _do

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serve_http(Handler) as fake.url:
        yield fake

"""The traffic client: rows sent through the ingress gateway (Envoy) with an API key, as users would.

Each target is an ingress host (``<model>.<env>.mlops.local``) with its model's prediction path and
its own rows; a target runs flat out (a canary being measured) or at a steady rate (users between
canaries). Every answer is counted in the open :class:`Window` objects of its host by the
``version`` that answered, which is how the runner measures the share each weight really gets.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Window:
    """Answers of one host to requests sent while it is open: count per version and per status."""

    opened: float = field(default_factory=time.monotonic)
    versions: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def share(self, version: str) -> float | None:
        answered = sum(self.versions.values())
        return self.versions[version] / answered if answered else None


@dataclass
class Target:
    host: str
    path: str
    rows: list[list[float]]
    rate: float | None  # requests per second; None: as fast as the client goes
    next_row: int = 0
    tokens: float = 0.0
    last: float = field(default_factory=time.monotonic)


class TrafficClient:
    def __init__(self, gateway_url: str, api_key: str, threads: int) -> None:
        parts = urlsplit(gateway_url)
        self.address = (parts.hostname or "127.0.0.1", int(parts.port or 80))
        self.api_key = api_key
        self.threads = threads
        self.lock = threading.Lock()
        self.targets: dict[str, Target] = {}
        self.windows: dict[str, list[Window]] = {}
        self.totals: Counter[str] = Counter()
        self.stop_event = threading.Event()
        self.workers: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, name=f"traffic-{index}", daemon=True)
            worker.start()
            self.workers.append(worker)

    def stop(self) -> None:
        self.stop_event.set()
        for worker in self.workers:
            worker.join(timeout=10)

    def target(self, host: str, path: str, rows: Sequence[Sequence[float]], rate: float | None) -> None:
        with self.lock:
            self.targets[host] = Target(host, path, [list(r) for r in rows], rate)

    def set_rate(self, host: str, rate: float | None) -> None:
        with self.lock:
            if host in self.targets:
                self.targets[host].rate = rate

    def remove(self, host: str) -> None:
        with self.lock:
            self.targets.pop(host, None)

    def open_window(self, host: str) -> Window:
        window = Window()
        with self.lock:
            self.windows.setdefault(host, []).append(window)
        return window

    def close_window(self, host: str, window: Window) -> None:
        with self.lock:
            if window in self.windows.get(host, []):
                self.windows[host].remove(window)

    def _take(self) -> Target | None:
        with self.lock:
            now = time.monotonic()
            for target in sorted(self.targets.values(), key=lambda t: t.last):
                if target.rate is None:
                    target.last = now
                    return target
                target.tokens = min(1.0, target.tokens + (now - target.last) * target.rate)
                target.last = now
                if target.tokens >= 1.0:
                    target.tokens -= 1.0
                    return target
        return None

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self.stop_event.is_set():
            target = self._take()
            if target is None:
                time.sleep(0.005)
                continue
            with self.lock:
                row = target.rows[target.next_row % len(target.rows)]
                target.next_row += 1
            body = json.dumps({"features": [row]})
            version, status = "", 0
            sent = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(*self.address, timeout=30)
                conn.request("POST", target.path, body=body, headers={
                    "Host": target.host, "Content-Type": "application/json", "x-api-key": self.api_key})
                response = conn.getresponse()
                raw = response.read()
                status = response.status
                if status == 200:
                    version = str(json.loads(raw).get("version", ""))
                if response.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException, ValueError):
                if conn is not None:
                    conn.close()
                conn = None
            with self.lock:
                self.totals[target.host] += 1
                for window in self.windows.get(target.host, []):
                    if sent < window.opened:
                        continue  # sent before the window opened (e.g. before a weight change)
                    window.statuses[status] += 1
                    if version:
                        window.versions[version] += 1
        if conn is not None:
            conn.close()


__all__ = ["Target", "TrafficClient", "Window"]

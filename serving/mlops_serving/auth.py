"""API keys: generated once, stored only as salted hashes, checked in constant time.

A key looks like ``mlk_<id>_<secret>``: a public 8-hex-digit id and 256 random bits. The keys
file (``MLOPS_SERVING_API_KEYS_FILE``, mounted from a Kubernetes Secret) holds one line per key::

    # id        hash                               models (optional; all when left out or *)
    3f9a1c2e    sha256$<salt b64url>$<digest b64url>   wine-classifier,breast-cancer-classifier

where digest = SHA-256(salt || secret). A single salted SHA-256 is enough here because the
secret is 256 random bits (no dictionary to attack); a slow KDF would cost milliseconds on every
request. The id selects the line, and the digests are compared with ``hmac.compare_digest``.
The file is re-read when its modification time, size or inode changes (Secret updates swap a
symlink), checked at most every ``MLOPS_SERVING_API_KEYS_RELOAD_S`` seconds; a file that became
unreadable or invalid keeps the previous keys and is logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mlops_platform.errors import ConfigError
from mlops_serving.errors import ForbiddenError, UnauthorizedError

log = logging.getLogger(__name__)

KEY_PREFIX = "mlk"
SCHEME = "sha256"
_KEY = re.compile(rf"^{KEY_PREFIX}_(?P<id>[0-9a-f]{{8}})_(?P<secret>[A-Za-z0-9_-]{{43}})$")
_ID = re.compile(r"^[0-9a-f]{8}$")
_MODELS = re.compile(r"^(\*|[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*)$")


@dataclass(frozen=True)
class KeyEntry:
    key_id: str
    salt: bytes
    digest: bytes
    models: frozenset[str] | None  # None: every model

    def allows(self, model: str) -> bool:
        return self.models is None or model in self.models


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key, or anyone when auth is off."""

    key_id: str | None
    models: frozenset[str] | None

    def authorize(self, model: str) -> None:
        if self.models is not None and model not in self.models:
            raise ForbiddenError(f"API key {self.key_id} may not use model {model!r}", field="model")


ANONYMOUS = Principal(None, None)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode()).digest()


def generate_key(models: list[str] | None = None) -> tuple[str, str]:
    """A new key and the line to add to the keys file (the key itself is stored nowhere)."""
    key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    key = f"{KEY_PREFIX}_{key_id}_{secret}"
    line = f"{key_id} {SCHEME}${_b64(salt)}${_b64(_digest(salt, secret))}"
    if models:
        bad = [m for m in models if not re.fullmatch(r"[A-Za-z0-9._-]+", m)]
        if bad:
            raise ConfigError(f"invalid model name(s) for --models: {', '.join(bad)}")
        line += " " + ",".join(models)
    return key, line


def parse_keys(text: str, source: str = "keys file") -> dict[str, KeyEntry]:
    """Entries by key id; a ConfigError naming the line when one is malformed."""
    entries: dict[str, KeyEntry] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        where = f"{source} line {number}"
        if len(parts) not in (2, 3) or not _ID.match(parts[0]):
            raise ConfigError(f"{where}: expected '<8-hex-digit id> {SCHEME}$<salt>$<digest> [models]'")
        hashed = parts[1].split("$")
        if len(hashed) != 3 or hashed[0] != SCHEME:
            raise ConfigError(f"{where}: expected a hash '{SCHEME}$<salt>$<digest>'")
        try:
            salt, digest = _unb64(hashed[1]), _unb64(hashed[2])
        except ValueError as exc:
            raise ConfigError(f"{where}: salt or digest is not base64url") from exc
        if len(digest) != hashlib.sha256().digest_size or len(salt) < 8:
            raise ConfigError(f"{where}: wrong salt or digest length")
        models: frozenset[str] | None = None
        if len(parts) == 3:
            if not _MODELS.match(parts[2]):
                raise ConfigError(f"{where}: models must be '*' or comma-separated model names")
            models = None if parts[2] == "*" else frozenset(parts[2].split(","))
        if parts[0] in entries:
            raise ConfigError(f"{where}: key id {parts[0]} appears twice")
        entries[parts[0]] = KeyEntry(parts[0], salt, digest, models)
    return entries


def verify(entries: dict[str, KeyEntry], key: str) -> KeyEntry | None:
    """The entry of ``key``, or None; the digest comparison takes constant time."""
    match = _KEY.match(key)
    if match is None:
        return None
    entry = entries.get(match.group("id"))
    secret = match.group("secret")
    if entry is None:
        # compare anyway, so an unknown id takes as long as a wrong secret
        hmac.compare_digest(_digest(b"\0" * 16, secret), b"\0" * 32)
        return None
    return entry if hmac.compare_digest(_digest(entry.salt, secret), entry.digest) else None


def key_from_headers(x_api_key: str | None, authorization: str | None) -> str | None:
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


class KeyStore:
    """The keys file, re-read when it changes."""

    def __init__(self, path: Path, reload_s: float) -> None:
        self.path = path
        self.reload_s = reload_s
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._entries: dict[str, KeyEntry] = {}
        self._load(initial=True)

    def _stat(self) -> tuple[int, int, int]:
        st = os.stat(self.path)
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _load(self, initial: bool = False) -> None:
        try:
            stamp = self._stat()
            if stamp == self._stamp:
                return
            entries = parse_keys(self.path.read_text(), str(self.path))
        except (OSError, ConfigError) as exc:
            if initial:
                if isinstance(exc, ConfigError):
                    raise
                raise ConfigError(f"MLOPS_SERVING_API_KEYS_FILE={self.path}: cannot read ({exc})") from exc
            log.error("API keys file %s unusable (%s); keeping the %d previous keys",
                      self.path, exc, len(self._entries))
            return
        self._entries, self._stamp = entries, stamp
        if initial:
            log.info("API-key auth on: %d key(s) from %s", len(entries), self.path)
        else:
            log.info("API keys file %s changed: %d key(s) now", self.path, len(entries))

    def entries(self) -> dict[str, KeyEntry]:
        now = time.monotonic()
        if now - self._checked >= self.reload_s:
            with self._lock:
                if now - self._checked >= self.reload_s:
                    self._checked = now
                    self._load()
        return self._entries


class Authenticator:
    """Turns request headers into a :class:`Principal`, or raises 401."""

    def __init__(self, store: KeyStore | None) -> None:
        self.store = store

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def authenticate(self, x_api_key: str | None, authorization: str | None) -> Principal:
        if self.store is None:
            return ANONYMOUS
        key = key_from_headers(x_api_key, authorization)
        if key is None:
            raise UnauthorizedError("missing API key: send it in 'x-api-key' or 'Authorization: Bearer <key>'")
        entry = verify(self.store.entries(), key)
        if entry is None:
            raise UnauthorizedError("invalid API key")
        return Principal(entry.key_id, entry.models)

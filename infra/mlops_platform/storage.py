"""Object-store access: a local folder or ``s3://bucket/key`` (AWS S3, MinIO, SeaweedFS) via boto3.

One module for every component that reads or writes objects (training data, prediction logs,
batch outputs), so that a local path and an S3 URI behave the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlops_platform.errors import InvalidInputError, ServiceUnavailableError
from mlops_platform.settings import PlatformSettings


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        parts = urlsplit(uri)
        if parts.scheme != "s3" or not parts.netloc:
            raise InvalidInputError(f"not an s3://bucket/key URI: {uri!r}")
        return cls(parts.netloc, parts.path.lstrip("/"))


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def s3_client(settings: PlatformSettings, timeout_s: float | None = None) -> Any:
    """A boto3 S3 client configured from the settings (endpoint, keys, region).

    ``timeout_s`` bounds each call: connect and read timeouts of ``timeout_s`` and one attempt
    (the caller retries); without it, botocore's standard retries with a 60 s read timeout."""
    import boto3
    from botocore.config import Config

    secret = settings.aws_secret_access_key.get_secret_value() if settings.aws_secret_access_key else None
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=secret,
        region_name=settings.aws_region or "us-east-1",
        config=Config(
            connect_timeout=5 if timeout_s is None else timeout_s,
            read_timeout=60 if timeout_s is None else timeout_s,
            retries={"max_attempts": 3 if timeout_s is None else 1, "mode": "standard"},
            s3={"addressing_style": "path"},
        ),
    )


def read_bytes(uri: str, settings: PlatformSettings) -> bytes:
    """Read a whole object or file; a clear error when it is missing or unreachable."""
    if is_s3(uri):
        from botocore.exceptions import BotoCoreError, ClientError

        location = S3Location.parse(uri)
        try:
            response = s3_client(settings).get_object(Bucket=location.bucket, Key=location.key)
            body: bytes = response["Body"].read()
            return body
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "NoSuchBucket", "404"):
                raise InvalidInputError(f"{uri}: no such object ({code})") from exc
            raise InvalidInputError(f"{uri}: cannot read ({code}: {exc})") from exc
        except BotoCoreError as exc:
            raise ServiceUnavailableError(
                f"{uri}: object store unreachable at {settings.s3_endpoint_url or 'AWS S3'}: {exc}"
            ) from exc
    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise InvalidInputError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise InvalidInputError(f"{path}: is a directory, expected a file") from exc
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read ({exc.strerror})") from exc


def join_uri(base: str, *parts: str) -> str:
    """``base`` (a folder or ``s3://bucket/prefix``) joined with relative parts by ``/``."""
    pieces = [base.rstrip("/"), *(p.strip("/") for p in parts if p.strip("/"))]
    return "/".join(pieces)


def _local_path(uri: str) -> Path:
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri)


def write_bytes(uri: str, data: bytes, settings: PlatformSettings, client: Any | None = None) -> None:
    """Write a whole object or file, atomically: readers never see a partial file.

    A local file is written next to its target and renamed into place; an S3 PUT is atomic by
    itself. Pass ``client`` (from :func:`s3_client`) to reuse one boto3 client across writes.
    """
    if is_s3(uri):
        from botocore.exceptions import BotoCoreError, ClientError

        location = S3Location.parse(uri)
        try:
            (client or s3_client(settings)).put_object(Bucket=location.bucket, Key=location.key, Body=data)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise InvalidInputError(f"{uri}: cannot write ({code}: {exc})") from exc
        except BotoCoreError as exc:
            raise ServiceUnavailableError(
                f"{uri}: object store unreachable at {settings.s3_endpoint_url or 'AWS S3'}: {exc}"
            ) from exc
        return
    import os
    import uuid

    path = _local_path(uri)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
        partial.write_bytes(data)
        os.replace(partial, path)
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot write ({exc.strerror})") from exc


def list_uris(prefix: str, settings: PlatformSettings, client: Any | None = None) -> list[str]:
    """URIs of every object under a folder or ``s3://bucket/prefix/``, sorted; empty when none.

    Hidden local files (such as partial writes) are left out.
    """
    if is_s3(prefix):
        from botocore.exceptions import BotoCoreError, ClientError

        location = S3Location.parse(prefix)
        key_prefix = location.key.rstrip("/") + "/" if location.key else ""
        uris: list[str] = []
        try:
            paginator = (client or s3_client(settings)).get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=location.bucket, Prefix=key_prefix):
                uris.extend(f"s3://{location.bucket}/{item['Key']}" for item in page.get("Contents", []))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "NoSuchBucket":
                raise InvalidInputError(f"{prefix}: no such bucket") from exc
            raise InvalidInputError(f"{prefix}: cannot list ({code}: {exc})") from exc
        except BotoCoreError as exc:
            raise ServiceUnavailableError(
                f"{prefix}: object store unreachable at {settings.s3_endpoint_url or 'AWS S3'}: {exc}"
            ) from exc
        return sorted(uris)
    root = _local_path(prefix)
    if not root.is_dir():
        return []
    return sorted(
        str(path)
        for path in root.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )

"""Staged outputs: written under ``<output>/_temporary/<token>/`` and committed only when complete.

Layout of an output folder (or ``s3://`` prefix)::

    <output>/part-00001-of-00004.parquet              predictions of shard 1 of 4 (committed)
    <output>/_temporary/<token>/...                   files of a run in progress (or of a killed one)
    <output>.rejects/rejects-00001-of-00004.parquet   rows of shard 1 that did not match the signature

The rejects sit BESIDE the output, in the sibling folder ``<output>.rejects``, never in it: a
reader of the output folder (``pandas.read_parquet(<output>)``, Spark) gets exactly the scored
rows. Readers (pandas, Arrow datasets, Spark) skip names that start with ``_``, so a staged file is
never read as output. Commit is a rename on a local disk and a server-side copy plus delete on
S3: a part file exists only once it is complete. A killed run leaves its ``_temporary/<token>``
folder behind (on S3 an unfinished multipart upload, which a bucket lifecycle rule
``AbortIncompleteMultipartUpload`` removes); deleting it is always safe.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from dataclasses import dataclass
from typing import Any

from mlops_platform.errors import InvalidInputError
from mlops_platform.settings import PlatformSettings
from mlops_platform.storage import S3Location, is_s3, s3_client
from mlops_platform.tables import Shard, filesystem

log = logging.getLogger(__name__)

TEMPORARY = "_temporary"


REJECTS_SUFFIX = ".rejects"


def rejects_folder(output_folder: str) -> str:
    """The folder beside ``output_folder`` that holds its rejects files."""
    return output_folder.rstrip("/") + REJECTS_SUFFIX


@dataclass(frozen=True)
class OutputPaths:
    """Where one shard's files go, as filesystem paths (``bucket/key`` on S3) and as URIs."""

    fs: Any
    s3: bool
    folder: str
    part: str
    rejects: str
    staging: str

    @classmethod
    def plan(cls, output_uri: str, shard: Shard, settings: PlatformSettings) -> OutputPaths:
        fs, folder = filesystem(output_uri, settings)
        folder = folder.rstrip("/")
        if is_s3(output_uri) and "/" not in folder:
            raise InvalidInputError(
                f"{output_uri}: the output must be a prefix inside the bucket (e.g. s3://{folder}/scores), "
                "so that its rejects can sit beside it"
            )
        suffix = f"{shard.index:05d}-of-{shard.count:05d}.parquet"
        return cls(
            fs=fs,
            s3=is_s3(output_uri),
            folder=folder,
            part=f"{folder}/part-{suffix}",
            rejects=f"{rejects_folder(folder)}/rejects-{suffix}",
            staging=f"{folder}/{TEMPORARY}/{uuid.uuid4().hex}",
        )

    def uri(self, path: str) -> str:
        return f"s3://{path}" if self.s3 else path

    def staged(self, path: str) -> str:
        return f"{self.staging}/{path.rsplit('/', 1)[-1]}"

    def exists(self, path: str) -> bool:
        import pyarrow.fs as pafs

        return bool(self.fs.get_file_info(path).type == pafs.FileType.File)


class StagedParquet:
    """A Parquet file written chunk by chunk to its staging path."""

    def __init__(self, paths: OutputPaths, final: str, schema: Any) -> None:
        import pyarrow.parquet as pq

        self.paths = paths
        self.schema = schema
        self.final = final
        self.path = paths.staged(final)
        if not paths.s3:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._stream = paths.fs.open_output_stream(self.path)
        self._writer = pq.ParquetWriter(self._stream, schema, compression="zstd")
        self.rows = 0

    def write(self, table: Any) -> None:
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        self._writer.close()
        self._stream.close()


def commit(paths: OutputPaths, staged: str, final: str, settings: PlatformSettings) -> None:
    """Make ``staged`` visible as ``final`` in one step (replacing an existing ``final``)."""
    if not paths.s3:
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.replace(staged, final)
        return
    from botocore.exceptions import BotoCoreError, ClientError

    source, target = S3Location.parse(f"s3://{staged}"), S3Location.parse(f"s3://{final}")
    client = s3_client(settings)
    try:
        # A managed copy: server side, multipart above 8 MB, so objects beyond 5 GB work too.
        client.copy({"Bucket": source.bucket, "Key": source.key}, target.bucket, target.key)
        client.delete_object(Bucket=source.bucket, Key=source.key)
    except (BotoCoreError, ClientError) as exc:
        raise InvalidInputError(f"cannot commit s3://{final}: {exc}") from exc


def remove(paths: OutputPaths, path: str) -> None:
    """Delete a committed file if it exists (an old rejects file the new run does not replace)."""
    if paths.exists(path):
        paths.fs.delete_file(path)


def discard(paths: OutputPaths) -> None:
    """Best effort: delete this run's staging folder."""
    with contextlib.suppress(OSError):
        paths.fs.delete_dir(paths.staging)
    if not paths.s3:  # S3 has no folders; locally, leave no empty _temporary behind
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(paths.staging))

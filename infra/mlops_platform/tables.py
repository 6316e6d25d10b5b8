"""Tabular inputs on a local disk or ``s3://``: CSV and Parquet files, read in bounded chunks.

The batch and drift jobs read their inputs here. An input URI is one file or a folder/prefix of
files (``.csv``, ``.csv.gz``, ``.parquet``, ``.pq``; names starting with ``.`` or ``_`` are left
out, as Spark and Arrow datasets do). Files are read through Arrow filesystems, which stream
(CSV) or read by row group (Parquet) so that an input larger than memory never has to fit in it;
:mod:`mlops_platform.storage` (boto3) stays the place for whole small objects.

Work is split into :class:`Unit`\\ s: one per Parquet row group, one per CSV file, in the order of
the sorted file names. :func:`select_shard` gives shard ``i`` of ``n`` every n-th unit, so the
shards are disjoint, deterministic, and together cover the input exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from mlops_platform.errors import InvalidInputError, ServiceUnavailableError
from mlops_platform.settings import PlatformSettings
from mlops_platform.storage import S3Location, is_s3

Format = Literal["csv", "parquet"]
SUFFIXES: dict[str, Format] = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}

# Text that is a finite-or-not decimal number; what the fast cast rejects is checked against it.
_NUMBER = r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$"


@dataclass(frozen=True)
class InputFile:
    uri: str
    path: str  # path in its Arrow filesystem (bucket/key for S3)
    format: Format
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Unit:
    """A piece of input read as a whole by one shard: a Parquet row group or a CSV file."""

    file: InputFile
    row_group: int | None  # None: the whole file
    rows: int | None  # known for Parquet row groups


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            left, right = text.split("/")
            index, count = int(left), int(right)
        except ValueError:
            raise InvalidInputError(f"--shard {text!r}: expected I/N, e.g. 2/4 (1-based)") from None
        if count < 1 or not 1 <= index <= count:
            raise InvalidInputError(f"--shard {text!r}: need 1 <= I <= N")
        return cls(index, count)

    @property
    def label(self) -> str:
        return f"{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def filesystem(uri: str, settings: PlatformSettings) -> tuple[Any, str]:
    """The Arrow filesystem holding ``uri`` and the path of ``uri`` in it."""
    import pyarrow.fs as pafs

    if is_s3(uri):
        location = S3Location.parse(uri)
        options: dict[str, Any] = {"region": settings.aws_region or "us-east-1"}
        if settings.aws_access_key_id and settings.aws_secret_access_key:
            options["access_key"] = settings.aws_access_key_id
            options["secret_key"] = settings.aws_secret_access_key.get_secret_value()
        if settings.s3_endpoint_url:
            endpoint = urlsplit(settings.s3_endpoint_url)
            options["endpoint_override"] = endpoint.netloc
            options["scheme"] = endpoint.scheme
        options["connect_timeout"] = 5
        options["request_timeout"] = 60
        return pafs.S3FileSystem(**options), f"{location.bucket}/{location.key}".rstrip("/")
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    return pafs.LocalFileSystem(), str(Path(path).absolute())


def format_of(name: str) -> Format | None:
    lower = name.lower()
    for suffix, kind in SUFFIXES.items():
        if lower.endswith(suffix):
            return kind
    return None


def list_inputs(uri: str, settings: PlatformSettings) -> tuple[Any, list[InputFile]]:
    """The filesystem and the input files under ``uri`` (one file, or a folder/prefix), sorted."""
    import pyarrow.fs as pafs

    fs, root = filesystem(uri, settings)
    try:
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.File:
            infos = [info]
        elif info.type == pafs.FileType.Directory:
            infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
        else:
            raise InvalidInputError(f"{uri}: no such file or folder")
    except OSError as exc:
        raise _io_error(uri, exc) from exc
    files = []
    for item in infos:
        if item.type != pafs.FileType.File:
            continue
        relative = item.path[len(root) :].lstrip("/") if item.path != root else item.base_name
        if any(part.startswith((".", "_")) for part in relative.split("/")):
            continue
        kind = format_of(item.base_name)
        if kind is None:
            continue
        mtime = int(item.mtime_ns) if item.mtime_ns is not None else 0
        file_uri = f"s3://{item.path}" if is_s3(uri) else item.path
        files.append(InputFile(file_uri, item.path, kind, int(item.size or 0), mtime))
    if not files:
        raise InvalidInputError(f"{uri}: no CSV or Parquet file ({', '.join(SUFFIXES)})")
    return fs, sorted(files, key=lambda f: f.path)


def _io_error(uri: str, exc: OSError) -> Exception:
    text = str(exc)
    if any(word in text for word in ("Connection refused", "Couldn't connect", "connect to", "timed out", "curl")):
        return ServiceUnavailableError(f"{uri}: object store unreachable: {text}")
    return InvalidInputError(f"{uri}: cannot read ({text})")


def parquet_file(fs: Any, file: InputFile) -> Any:
    """An open ``pyarrow.parquet.ParquetFile``; a clear error when the file is not Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(fs.open_input_file(file.path))
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        raise InvalidInputError(f"{file.uri}: not a readable Parquet file ({exc})") from exc
    except OSError as exc:
        raise _io_error(file.uri, exc) from exc


def plan_units(fs: Any, files: Sequence[InputFile]) -> list[Unit]:
    """Every unit of work, in a fixed order: row groups of Parquet files, whole CSV files.

    Reads each Parquet footer, so a file that is not Parquet fails here, before any work is done.
    """
    units: list[Unit] = []
    for file in files:
        if file.format == "csv":
            units.append(Unit(file, None, None))
            continue
        metadata = parquet_file(fs, file).metadata
        units.extend(Unit(file, i, metadata.row_group(i).num_rows) for i in range(metadata.num_row_groups))
    return units


def select_shard(units: Sequence[Unit], shard: Shard) -> list[Unit]:
    """Units of ``shard``: every ``count``-th, starting at ``index - 1`` (round robin)."""
    return list(units[shard.index - 1 :: shard.count])


def file_columns(fs: Any, file: InputFile, csv_block_bytes: int) -> list[str]:
    """Column names of a file (a Parquet footer, or the CSV header)."""
    if file.format == "parquet":
        return [str(n) for n in parquet_file(fs, file).schema_arrow.names]
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        with fs.open_input_stream(file.path) as stream:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(block_size=min(csv_block_bytes, 1 << 20)),
                convert_options=pacsv.ConvertOptions(column_types={}, strings_can_be_null=True),
            )
            return [str(n) for n in reader.schema.names]
    except pa.ArrowInvalid as exc:
        raise InvalidInputError(f"{file.uri}: not a readable CSV file ({exc})") from exc
    except OSError as exc:
        raise _io_error(file.uri, exc) from exc


def iter_batches(
    fs: Any,
    unit: Unit,
    columns: Sequence[str],
    *,
    chunk_rows: int,
    csv_block_bytes: int,
    csv_text_columns: Sequence[str] = (),
) -> Iterator[Any]:
    """``pyarrow.RecordBatch``\\ es of at most ``chunk_rows`` rows holding ``columns`` of ``unit``.

    CSV columns in ``csv_text_columns`` are read as text (nullable: empty, ``NA``, ``NaN``...
    become null), so that a stray word in a numeric column is one bad value, not a failed read.
    """
    import pyarrow as pa

    file = unit.file
    try:
        if file.format == "parquet":
            source = parquet_file(fs, file)
            groups = [unit.row_group] if unit.row_group is not None else None
            yield from source.iter_batches(batch_size=chunk_rows, row_groups=groups, columns=list(columns))
            return
        import pyarrow.csv as pacsv

        with fs.open_input_stream(file.path) as stream:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(block_size=csv_block_bytes),
                convert_options=pacsv.ConvertOptions(
                    include_columns=list(columns),
                    column_types={name: pa.string() for name in csv_text_columns},
                    strings_can_be_null=True,
                ),
            )
            for batch in reader:
                for start in range(0, batch.num_rows, chunk_rows):
                    yield batch.slice(start, chunk_rows)
    except InvalidInputError:
        raise
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        raise InvalidInputError(f"{file.uri}: cannot read ({exc})") from exc
    except OSError as exc:
        raise _io_error(file.uri, exc) from exc


def to_float64(column: Any, name: str) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """A numeric or text Arrow column as float64 plus the mask of values that are not numbers.

    Missing values (null) and text that is not a number become NaN and are in the mask; NaN and
    infinities stored as numbers are not in the mask (callers decide about them). A column of
    another type (boolean, timestamp, ...) is an :class:`InvalidInputError`.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        try:
            numbers = pc.cast(column, pa.float64())
        except pa.ArrowInvalid:
            valid = pc.fill_null(pc.match_substring_regex(column, _NUMBER), False)
            numbers = pc.cast(pc.utf8_trim_whitespace(pc.if_else(valid, column, None)), pa.float64())
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        numbers = pc.cast(column, pa.float64())
    elif pa.types.is_null(kind):
        numbers = pa.nulls(len(column), pa.float64())
    else:
        raise InvalidInputError(f"column {name!r} has type {kind}; expected numbers")
    bad = np.asarray(numbers.is_null().to_numpy(zero_copy_only=False), dtype=np.bool_)
    values = np.asarray(numbers.to_numpy(zero_copy_only=False), dtype=np.float64)
    return values, bad

"""The shards of a batch run, for the batch-inference workflow's steps (``mlops workflow shards`` and
``mlops workflow batch-summary``): how an input is split, and whether every shard committed its output."""

from __future__ import annotations

import re
from typing import Any

from mlops_platform.errors import InvalidInputError

MAX_SHARDS = 256
PART = re.compile(r"part-(\d+)-of-(\d+)\.parquet$")
REJECTS = re.compile(r"rejects-(\d+)-of-(\d+)\.parquet$")


def plan_shards(units: int, wanted: int) -> list[str]:
    """Shard arguments ``I/N`` (1-based) for ``wanted`` shards, at most one per unit of input."""
    if not 1 <= wanted <= MAX_SHARDS:
        raise InvalidInputError(f"--shards {wanted}: expected 1 to {MAX_SHARDS}")
    if units < 1:
        raise InvalidInputError("the input has nothing to score")
    count = min(wanted, units)
    return [f"{i}/{count}" for i in range(1, count + 1)]


def summarize_parts(names: list[str]) -> tuple[int, list[int], list[str]]:
    """From output file names: the shard count, the shards that committed a part, and problems."""
    parts: dict[int, set[int]] = {}
    for name in names:
        match = PART.search(name)
        if match and "/_" not in name:
            parts.setdefault(int(match.group(2)), set()).add(int(match.group(1)))
    if not parts:
        return 0, [], ["no part-<i>-of-<n>.parquet file"]
    problems = []
    if len(parts) > 1:
        problems.append(f"parts of different runs: shard counts {sorted(parts)}")
    count = max(parts)
    done = sorted(parts[count])
    missing = [i for i in range(1, count + 1) if i not in parts[count]]
    if missing:
        problems.append(f"shards without output: {', '.join(f'{i}/{count}' for i in missing)}")
    return count, done, problems


def rows_per_file(uris: list[str], settings: Any) -> dict[str, int | str]:
    """Rows per output part and rejects file of a batch run (a message for a file that cannot be read)."""
    from mlops_platform.tables import filesystem

    rows: dict[str, int | str] = {}
    wanted = [u for u in uris if (PART.search(u) or REJECTS.search(u)) and "/_" not in u]
    if not wanted:
        return rows
    import pyarrow.parquet as pq

    for uri in wanted:
        fs, path = filesystem(uri, settings)
        try:
            with fs.open_input_file(path) as handle:
                rows[uri] = int(pq.ParquetFile(handle).metadata.num_rows)
        except (OSError, ValueError) as exc:
            rows[uri] = f"unreadable ({exc})"
    return rows

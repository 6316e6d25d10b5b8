"""Shared input checks: JSON decoding, content types, and rows/records/columns → a float64 matrix.

Every message names the field (``features[3][1] (malic_acid)``) and the problem, so a client can
fix its request without reading the server's code.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mlops_serving.errors import BadRequestError, ModelInputError, PayloadTooLargeError, UnsupportedMediaTypeError
from mlops_serving.signature import InputSchema

Matrix = npt.NDArray[np.float64]
FLOAT32_MAX = float(np.finfo(np.float32).max)
LARGE_BODY = 64 * 1024
"""Bodies from this size on are parsed in a separate process (see :mod:`mlops_serving.parsing`)."""
_CHUNK_ROWS = 2048  # rows converted to numpy per C call: a bounded hold of the GIL per step


@dataclass(frozen=True)
class ModelInputs:
    """What parsing a request needs to know of its model. Small and picklable: a large body is
    parsed in another process, which gets this instead of the model."""

    name: str
    feature_names: list[str]
    has_proba: bool
    input_schema: InputSchema
    """The input contract read from the version's signature (:mod:`mlops_serving.signature`)."""
    volume_width: int
    """Features per row for the body-size bound of large requests."""


def media_type(content_type: str | None, allowed: Sequence[str], default: str | None = None) -> str:
    """The media type of a Content-Type header if allowed (charset must be utf-8), else 415.

    ``default``: the type of a body sent without the header (the v2 routes take JSON then, as
    KServe and Triton do: Triton's own HTTP client sends none); without it, a missing header is 415."""
    if not content_type and default is not None:
        return default
    if not content_type:
        raise UnsupportedMediaTypeError(
            f"missing Content-Type; send one of: {', '.join(allowed)}", field="Content-Type"
        )
    main, *params = (p.strip() for p in content_type.split(";"))
    main = main.lower()
    if main not in allowed:
        raise UnsupportedMediaTypeError(
            f"unsupported Content-Type {main!r}; send one of: {', '.join(allowed)}", field="Content-Type"
        )
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaTypeError(f"unsupported charset {value.strip()!r}; only utf-8", field="Content-Type")
    return main


def check_volume(body: bytes, max_rows: int, width: int) -> None:
    """413 before any parsing when ``body`` holds more values or rows than ``max_rows`` rows of
    ``width`` features can need: it counts separators (``,`` and newlines) and containers (``[``,
    ``{``), a few milliseconds of C for the largest body, where decoding a million empty lists
    or strings would keep the parsing process busy for a second. The bounds are generous (field
    names, nesting)."""
    values = body.count(b",") + body.count(b"\n")
    containers = body.count(b"[") + body.count(b"{")
    most_values = 2 * max_rows * (width + 1) + 1024
    most_containers = 2 * max_rows + 1024
    if values > most_values or containers > most_containers:
        raise PayloadTooLargeError(
            f"the body holds more values or rows than {max_rows} rows of {width} features need "
            f"(MLOPS_SERVING_MAX_ROWS={max_rows})", field="body",
        )


def decode_json(body: bytes) -> Any:
    """The JSON document of ``body`` (UTF-8 only, as RFC 8259 requires), else 400 naming the problem."""
    if not body:
        raise BadRequestError("empty request body; expected a JSON object", field="body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestError(f"request body is not UTF-8: {exc.reason} at byte {exc.start}", field="body") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequestError(
            f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", field="body"
        ) from exc
    except RecursionError as exc:
        raise BadRequestError("malformed JSON: nested too deeply", field="body") from exc
    except ValueError as exc:  # Python's int-to-string limit: an integer with thousands of digits
        raise BadRequestError(
            f"malformed JSON: a number has too many digits (at most {sys.get_int_max_str_digits()})", field="body"
        ) from exc


def to_array(values: list[Any], dtype: Any = None) -> npt.NDArray[Any]:
    """``np.asarray(values, dtype)`` in steps of a few thousand items, so one big request does not
    hold the GIL (and so the event loop) for the whole conversion."""
    if len(values) <= _CHUNK_ROWS:
        return np.asarray(values, dtype=dtype)
    parts = [np.asarray(values[k:k + _CHUNK_ROWS], dtype=dtype) for k in range(0, len(values), _CHUNK_ROWS)]
    if len({(p.dtype, p.shape[1:]) for p in parts}) != 1:
        return np.asarray(values, dtype=dtype)  # ragged or mixed: let numpy decide (and refuse) as a whole
    return np.concatenate(parts)


def out_of_range(rows: Sequence[Sequence[Any]], where: Any) -> ModelInputError:
    """The 422 of the first integer beyond float range (numpy raised OverflowError converting ``rows``)."""
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            if isinstance(value, int) and abs(value) > FLOAT32_MAX:
                name = where(i, j)
                return ModelInputError(f"{name}: an integer of {len(str(abs(value)))} digits is out of range "
                                         f"(|x| <= {FLOAT32_MAX:g})", field=name)
    return ModelInputError("a number is out of range", field="body")  # pragma: no cover - numpy said so


def require_object(payload: Any, what: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise BadRequestError(f"{what} must be a JSON object, got {_kind(payload)}", field="body")
    return payload


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def first_width(rows: Any) -> int | None:
    """The length of the first row of ``rows`` (a list of lists), if it is one."""
    if isinstance(rows, list) and rows and isinstance(rows[0], list):
        return len(rows[0])
    return None


def first_keys(records: Any) -> list[str] | None:
    """The keys of the first record of ``records`` (a list of objects), if it is one."""
    if isinstance(records, list) and records and isinstance(records[0], dict):
        return [str(key) for key in records[0]]
    return None


def describe_features(names: Sequence[str]) -> str:
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    return f"{len(names)} features ({shown})"


def rows_to_matrix(rows: Any, names: Sequence[str], field: str, maybe_bool: bool = True) -> Matrix:
    """A list of rows, each a list of numbers in signature order.

    ``maybe_bool=False`` tells that the body holds no JSON ``true``/``false`` (a boolean would
    otherwise be silently read as 1 or 0 by numpy), which allows the vectorised fast path.
    """
    if not isinstance(rows, list):
        raise ModelInputError(f"{field}: expected a list of rows, got {_kind(rows)}", field=field)
    if not rows:
        raise ModelInputError(f"{field}: empty batch; send at least one row", field=field)
    if not maybe_bool:
        try:
            array = to_array(rows)
        except (ValueError, TypeError, OverflowError):
            array = None
        if array is not None and array.ndim == 2 and array.dtype.kind in "fiu" and array.shape[1] == len(names):
            return check_finite(array.astype(np.float64, copy=False), names, field)
    width = len(names)
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise ModelInputError(
                f"{field}[{i}]: expected a list of {describe_features(names)}, got {_kind(row)}", field=f"{field}[{i}]"
            )
        if len(row) != width:
            raise ModelInputError(
                f"{field}[{i}]: expected {describe_features(names)}, got {len(row)} values", field=f"{field}[{i}]"
            )
        for j, value in enumerate(row):
            if not _is_number(value):
                raise ModelInputError(
                    f"{field}[{i}][{j}] ({names[j]}): expected a number, got {_kind(value)}",
                    field=f"{field}[{i}][{j}]",
                )
    try:
        array = to_array(rows, np.float64)
    except OverflowError as exc:  # integers beyond float range
        raise out_of_range(rows, lambda i, j: f"{field}[{i}][{j}] ({names[j]})") from exc
    return check_finite(array, names, field)


def records_to_matrix(records: Any, names: Sequence[str], field: str, maybe_bool: bool = True) -> Matrix:
    """A list of objects ``{feature: value}``; every feature present, no unknown ones."""
    if not isinstance(records, list):
        raise ModelInputError(f"{field}: expected a list of objects, got {_kind(records)}", field=field)
    if not records:
        raise ModelInputError(f"{field}: empty batch; send at least one record", field=field)
    expected = set(names)
    rows = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise ModelInputError(
                f"{field}[{i}]: expected an object of feature values, got {_kind(record)}", field=f"{field}[{i}]"
            )
        if len(record) != len(names) or record.keys() != expected:
            check_names(list(record), names, f"{field}[{i}]")
        rows.append([record[name] for name in names])
    return _named_rows(rows, names, field, maybe_bool, lambda i, j: f"{field}[{i}].{names[j]}")


def columns_to_matrix(columns: Any, names: Sequence[str], field: str, maybe_bool: bool = True) -> Matrix:
    """An object ``{feature: [values...]}`` with one equally long list per feature."""
    if not isinstance(columns, dict):
        raise ModelInputError(f"{field}: expected an object of columns, got {_kind(columns)}", field=field)
    check_names(list(columns), names, field)
    lengths = set()
    for name in names:
        column = columns[name]
        if not isinstance(column, list):
            columns = {**columns, name: [column]}  # a scalar: one row
        lengths.add(len(columns[name]))
    if len(lengths) != 1:
        raise ModelInputError(
            f"{field}: columns have different lengths ({', '.join(map(str, sorted(lengths)))})", field=field
        )
    if lengths == {0}:
        raise ModelInputError(f"{field}: empty batch; send at least one row", field=field)
    rows = [list(values) for values in zip(*(columns[name] for name in names), strict=True)]
    return _named_rows(rows, names, field, maybe_bool, lambda i, j: f"{field}.{names[j]}[{i}]")


def frame_to_matrix(columns: Sequence[Any], data: Any, names: Sequence[str], field: str,
                    maybe_bool: bool = True) -> Matrix:
    """Columns plus rows (pandas 'split' orient), reordered to signature order."""
    column_names = [str(c) for c in columns]
    in_order = column_names == list(names)  # the usual case; names are unique, so nothing to check
    if not in_order:
        check_names(column_names, names, f"{field}.columns")
    if not isinstance(data, list):
        raise ModelInputError(f"{field}.data: expected a list of rows, got {_kind(data)}", field=f"{field}.data")
    if in_order:
        return rows_to_matrix(data, names, f"{field}.data", maybe_bool)
    order = [column_names.index(name) for name in names]
    matrix = rows_to_matrix(data, column_names, f"{field}.data", maybe_bool)
    return matrix[:, order]


def _named_rows(rows: list[list[Any]], names: Sequence[str], field: str, maybe_bool: bool,
                where: Any) -> Matrix:
    if not maybe_bool:
        try:
            array = to_array(rows)
        except (ValueError, TypeError, OverflowError):
            array = None
        if array is not None and array.ndim == 2 and array.dtype.kind in "fiu":
            return check_finite(array.astype(np.float64, copy=False), names, field, where)
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            if not _is_number(value):
                raise ModelInputError(f"{where(i, j)}: expected a number, got {_kind(value)}", field=where(i, j))
    try:
        matrix = to_array(rows, np.float64)
    except OverflowError as exc:  # integers beyond float range
        raise out_of_range(rows, where) from exc
    return check_finite(matrix, names, field, where)


def check_names(given: Sequence[str], names: Sequence[str], field: str) -> None:
    """Same feature names as the signature (any order), else 422 naming the missing and unknown ones.

    Linear in the number of names given (a hostile body may name a hundred thousand)."""
    counts = Counter(given)
    expected = set(names)
    missing = [n for n in names if n not in counts]
    unknown = [g for g in counts if g not in expected]
    duplicated = sorted(g for g, count in counts.items() if count > 1)
    problems = []
    if missing:
        problems.append(f"missing feature(s): {_some(missing)}")
    if unknown:
        problems.append(f"unknown feature(s): {_some(unknown)}")
    if duplicated:
        problems.append(f"repeated feature(s): {_some(duplicated)}")
    if problems:
        raise ModelInputError(f"{field}: {'; '.join(problems)}; the model expects {describe_features(names)}",
                                field=field)


def _some(items: Sequence[Any], shown: int = 20) -> str:
    """The first ``shown`` items, then how many more: a message stays one short line."""
    text = ", ".join(str(item)[:100] for item in items[:shown])
    return text + (f", ... ({len(items) - shown} more)" if len(items) > shown else "")


def check_finite(matrix: Matrix, names: Sequence[str], field: str, where: Any = None) -> Matrix:
    """422 naming the first NaN, infinite or out-of-range value (beyond float32, where scikit-learn's
    trees would turn it into infinity and fail inside the model)."""
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        raise ModelInputError(f"{field}: expected rows of {describe_features(names)}, got shape "
                                f"{list(matrix.shape)}", field=field)
    if matrix.shape[0] == 0:
        raise ModelInputError(f"{field}: empty batch; send at least one row", field=field)
    if not matrix.size or float(np.abs(matrix).max()) <= FLOAT32_MAX:  # one pass (False for a NaN too)
        return matrix
    if not np.isfinite(matrix).all():
        i, j = (int(k) for k in np.argwhere(~np.isfinite(matrix))[0])
        value = matrix[i, j]
        text = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        name = where(i, j) if where is not None else f"{field}[{i}][{j}] ({names[j]})"
        raise ModelInputError(f"{name}: {text} is not allowed; send finite numbers", field=name)
    # every value finite, so the one beyond FLOAT32_MAX found above is out of range
    i, j = (int(k) for k in np.argwhere(np.abs(matrix) > FLOAT32_MAX)[0])
    name = where(i, j) if where is not None else f"{field}[{i}][{j}] ({names[j]})"
    raise ModelInputError(f"{name}: {matrix[i, j]:g} is out of range (|x| <= {FLOAT32_MAX:g}; tree models "
                            "compute in float32)", field=name)

"""MLflow's scoring protocol (``POST /invocations``), answered as ``mlflow models serve`` answers.

Accepted bodies (JSON), exactly one of the keys, optionally with an empty ``params``::

    {"dataframe_split": {"columns": [...], "data": [[...], ...]}}
    {"dataframe_records": [{"col": value, ...}, ...]}
    {"instances": [{"col": value, ...}, ...]}  or  {"instances": [[...], ...]}
    {"inputs": {"col": [values...], ...}}       or  {"inputs": [[...], ...]} / [{...}, ...]

or ``text/csv`` with a header row of feature names. Response ``{"predictions": [...]}``; errors
``{"error_code": "...", "message": "..."}`` as MLflow's server sends them. Unlike MLflow, extra
columns are rejected (422) rather than ignored, so a renamed feature cannot go unnoticed.
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_serving.errors import BadRequestError, ModelInputError, ServingError
from mlops_serving.protocols.tabular import (
    Matrix,
    ModelInputs,
    check_finite,
    check_names,
    columns_to_matrix,
    decode_json,
    describe_features,
    first_keys,
    first_width,
    frame_to_matrix,
    media_type,
    records_to_matrix,
    require_object,
    rows_to_matrix,
)

if TYPE_CHECKING:
    from mlops_serving.runtime import Prediction

CONTENT_TYPES = ("application/json", "text/csv")
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def parse(body: bytes, content_type: str | None, model: ModelInputs) -> Matrix:
    kind = media_type(content_type, CONTENT_TYPES)
    if kind == "text/csv":
        return parse_csv(body, model)
    payload = require_object(decode_json(body), "the request")
    found = [k for k in payload if k in FORMATS]
    unknown = [k for k in payload if k not in FORMATS and k != "params"]
    if len(found) != 1 or unknown:
        raise BadRequestError(
            f"expected exactly one of {', '.join(FORMATS)} (plus optional params); got keys "
            f"{', '.join(map(repr, payload)) or 'none'}", field="body",
        )
    if payload.get("params"):
        raise ModelInputError("params: this model takes no parameters", field="params")
    key = found[0]
    data = payload[key]
    schema = model.input_schema
    maybe_bool = b"true" in body or b"false" in body
    if key == "dataframe_split":
        if not isinstance(data, dict):
            raise ModelInputError("dataframe_split: expected an object with 'columns' and 'data'", field=key)
        if "columns" not in data or "data" not in data:
            raise ModelInputError("dataframe_split: 'columns' and 'data' are required", field=key)
        columns = data["columns"]
        if not isinstance(columns, list):
            raise ModelInputError("dataframe_split.columns: expected a list of names", field=f"{key}.columns")
        if not schema.names_known:  # a tensor or unnamed input: the columns are positions, as in MLflow
            names = schema.names_for(given=[str(c) for c in columns])
            if len(columns) != len(names):
                raise ModelInputError(f"{key}.columns: {len(columns)} columns; the model expects "
                                        f"{describe_features(names)}", field=f"{key}.columns")
            return rows_to_matrix(data["data"], names, f"{key}.data", maybe_bool)
        return frame_to_matrix(columns, data["data"], schema.names_for(given=[str(c) for c in columns]), key,
                               maybe_bool)
    if key == "dataframe_records":
        return records_to_matrix(data, schema.names_for(given=first_keys(data)), key, maybe_bool)
    if isinstance(data, dict):
        return columns_to_matrix(data, schema.names_for(given=list(data)), key, maybe_bool)
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return records_to_matrix(data, schema.names_for(given=first_keys(data)), key, maybe_bool)
    return rows_to_matrix(data, schema.names_for(width=first_width(data)), key, maybe_bool)


def parse_csv(body: bytes, model: ModelInputs) -> Matrix:
    import pandas as pd

    if not body.strip():
        raise ModelInputError("CSV body is empty; send a header row of feature names and data rows", field="body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestError(f"CSV body is not UTF-8: {exc.reason} at byte {exc.start}", field="body") from exc
    schema = model.input_schema
    end = text.find("\n")
    fields = text.count(",", 0, end if end >= 0 else len(text)) + 1
    if fields > 2 * model.volume_width + 64:  # no need to split a header of 100,000 names to refuse it
        raise ModelInputError(f"csv header: {fields} columns; the model expects "
                                f"{describe_features(schema.names_for(width=fields))}", field="csv header")
    try:  # the header first, with the csv module: a body of 100,000 columns never reaches pandas
        header = next(csv.reader(io.StringIO(text)), [])
    except csv.Error as exc:
        raise BadRequestError(f"malformed CSV header: {exc}", field="body") from exc
    names = schema.names_for(given=header)
    if schema.names_known:
        check_names(header, names, "csv header")
    elif len(header) != len(names):  # a tensor or unnamed input: the columns are positions
        raise ModelInputError(f"csv header: {len(header)} columns; the model expects {describe_features(names)}",
                                field="csv header")
    else:
        check_names(header, header, "csv header")  # repeated names
        if names != header:
            text = ",".join(names) + (text[end:] if end >= 0 else "")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=np.float64)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BadRequestError(f"malformed CSV: {_first_line(exc)}", field="body") from exc
    except (ValueError, OverflowError) as exc:  # a cell that is not a number
        raise _not_a_number(text, names) from exc
    if not isinstance(frame.index, pd.RangeIndex):  # pandas took the extra leading fields for an index
        raise BadRequestError("malformed CSV: the first data row has more fields than the header", field="body")
    if frame.empty:
        raise ModelInputError("csv: empty batch; send at least one data row", field="body")
    matrix = frame[names].to_numpy(dtype=np.float64)
    return check_finite(matrix, names, "csv", lambda i, j: f"csv row {i + 1} column {names[j]}")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _not_a_number(text: str, names: list[str]) -> ServingError:
    """422 naming the first cell that is not a number (pandas does not say where)."""
    for row, record in enumerate(csv.DictReader(io.StringIO(text))):
        for name in names:
            value = record.get(name) or ""
            try:
                float(value)
            except ValueError:
                return ModelInputError(f"csv column {name}: expected numbers, got {value[:40]!r} in row {row + 1}",
                                         field=name)
    return BadRequestError("malformed CSV: a value is not a number", field="body")


def render(prediction: Prediction) -> bytes:
    return json.dumps({"predictions": prediction.labels.tolist()}, separators=(",", ":")).encode()


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error_code": code, "message": message}

"""Settings of the batch job: the shared platform settings plus ``MLOPS_BATCH_*``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mlops_platform.settings import PlatformSettings

ENV_PREFIX = "MLOPS_BATCH_"


class BatchSettings(PlatformSettings):
    """``MLOPS_BATCH_<FIELD>`` for every field below; the command's flags override them."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", env_ignore_empty=True, populate_by_name=True
    )

    chunk_rows: int = Field(
        100_000, ge=1, description="Rows predicted and written at a time (one Parquet row group per chunk)."
    )
    csv_block_bytes: int = Field(
        16 << 20, ge=1 << 16, description="Bytes of CSV parsed at a time; with chunk_rows it bounds memory."
    )
    invalid_rows: Literal["reject", "fail"] = Field(
        "reject",
        description="Rows that do not match the signature: 'reject' writes them to a rejects file beside "
        "the output and goes on, 'fail' fails the job (nothing is committed).",
    )

"""Session fixtures of the real services the tests share (a pytest plugin, see tests/conftest.py).

One PostgreSQL cluster and one SeaweedFS S3 store serve the whole session, started when a test first
asks for them: a test creates its own database (``postgres.create_database``) or bucket
(``s3.new_bucket`` / ``s3.make_bucket``) in them. A test that injects faults into a service (a
SIGSTOPped S3) starts its own with the context managers of :mod:`support.seaweedfs` and friends.

A missing binary skips the tests that use the fixture, with the reason, or fails them under
``MLOPS_REQUIRE_INTEGRATION=1``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.postgres import Postgres, postgres_server
from support.seaweedfs import S3, seaweedfs_s3


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster on a loopback port, for the whole session."""
    with postgres_server(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    """A SeaweedFS S3 store on loopback ports, for the whole session."""
    with seaweedfs_s3(tmp_path_factory.mktemp("seaweedfs")) as store:
        yield store

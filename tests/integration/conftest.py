"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.ray_cluster import running_cluster


@pytest.fixture(scope="session")
def cluster() -> Iterator[str]:
    """The address of a 2-CPU Ray cluster on loopback, shared by the whole session."""
    yield from running_cluster()

"""Every simulation backend passes the same contract: a seeded run equals the inline backend's."""

from __future__ import annotations

import pytest

from fedlab.simulation import Backend, InlineBackend, ThreadBackend
from fedlab.simulation.processes import ProcessBackend
from fedlab.simulation.ray_backend import RayBackend
from tests.contracts.backend_contract import BackendContract


class TestInlineBackendContract(BackendContract):
    def make_backend(self) -> Backend:
        return InlineBackend()


class TestThreadBackendContract(BackendContract):
    def make_backend(self) -> Backend:
        return ThreadBackend(4)


class TestProcessBackendContract(BackendContract):
    def make_backend(self) -> Backend:
        return ProcessBackend(2)


class TestSpawnedProcessBackendContract(BackendContract):
    """Workers that do not inherit this process: the app is found by import."""

    hang_timeout = 10.0  # a worker that replaces a killed one imports everything afresh

    def make_backend(self) -> Backend:
        return ProcessBackend(2, start_method="spawn")


class TestRayBackendContract(BackendContract):
    """Clients in the actors of a real Ray cluster on loopback."""

    hang_timeout = 10.0  # an actor that replaces a killed one starts a Python process

    @pytest.fixture(autouse=True)
    def _cluster(self, cluster: str) -> None:
        self.address = cluster

    def make_backend(self) -> Backend:
        return RayBackend(address=self.address, num_cpus=1)

"""Every simulation backend passes the same contract: a seeded run equals the inline backend's."""

from __future__ import annotations

from fedlab.simulation import Backend, InlineBackend, ThreadBackend
from tests.contracts.backend_contract import BackendContract


class TestInlineBackendContract(BackendContract):
    def make_backend(self) -> Backend:
        return InlineBackend()


class TestThreadBackendContract(BackendContract):
    def make_backend(self) -> Backend:
        return ThreadBackend(4)

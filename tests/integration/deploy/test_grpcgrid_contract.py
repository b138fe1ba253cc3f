"""The Grid contract, run against GrpcGrid with a real SuperLink and real SuperNodes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fedlab.client import ClientApp
from fedlab.deploy.client.grpcgrid import GrpcGrid
from fedlab.events import EventBus
from fedlab.deploy.security import INSECURE
from tests.contracts.grid_contract import GridContract, contract_app
from tests.integration.deploy.deploy_cluster import Cluster

CONTRACT_APP = "tests.contracts.grid_contract:contract_app"


class TestGrpcGridContract(GridContract):
    """One SuperLink and three SuperNodes for the whole class; a fresh run per test."""

    cluster: Cluster

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def processes(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
        cluster = Cluster(tmp_path_factory.mktemp("grpc-contract"))
        try:
            cluster.start_superlink()
            for index in range(cls.num_nodes):
                cluster.start_node(f"partition-id={index} num-partitions={cls.num_nodes}", app=CONTRACT_APP)
            cluster.control.wait_for_nodes(cls.num_nodes, timeout=60)
            cls.cluster = cluster
            yield cluster
        finally:
            cluster.stop()

    def make_grid(self, app: ClientApp, num_nodes: int, events: EventBus) -> GrpcGrid:
        # The nodes run the contract's app, pinned with --app; a new run gives every test
        # fresh per-node state, as a new SimulationGrid does.
        assert app.message_types == contract_app().message_types
        run_id = self.cluster.control.create_run(b"", {}, attached=True)
        return GrpcGrid(self.cluster.serverappio, run_id, events=events, security=INSECURE)

"""What a Flower app's code receives: Flower records in handlers, Mods, state and the Grid."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import fedlab
from fedlab.compat import flower


@pytest.fixture(autouse=True)
def _hook() -> object:
    with flower.enabled():
        yield


def test_a_handler_gets_flower_records_from_a_fedlab_message_and_state_persists() -> None:
    from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        arrays = msg.content["arrays"].to_numpy_ndarrays()
        seen = context.state.get("seen")
        count = 0 if seen is None else seen.to_numpy_ndarrays()[0][0]
        context.state["seen"] = ArrayRecord([np.array([count + 1.0])])
        content = RecordDict(
            {"arrays": ArrayRecord([arrays[0] * 2]), "metrics": MetricRecord({"n": int(count)})}
        )
        return Message(content, reply_to=msg)

    native = fedlab.Message(
        fedlab.RecordDict({"arrays": fedlab.ArrayRecord([np.ones(2)])}),
        dst_node_id=5,
        message_type="train",
    )
    context = fedlab.Context(
        run_id=1, node_id=5, state=fedlab.RecordDict({"seen": fedlab.ArrayRecord([np.zeros(1)])})
    )
    first = app(native, context)
    second = app(native, context)
    assert not first.has_error(), first.error
    assert first.content["arrays"]["0"].numpy().tolist() == [2.0, 2.0]
    assert (first.content["metrics"]["n"], second.content["metrics"]["n"]) == (0, 1)


def test_flower_context_takes_flowers_positional_order() -> None:
    from flwr.app import Context, RecordDict

    context = Context(3, 7, {"partition-id": 1}, RecordDict(), {"lr": 0.1})
    assert (context.run_id, context.node_id, context.node_config, context.run_config) == (
        3,
        7,
        {"partition-id": 1},
        {"lr": 0.1},
    )


def test_grid_create_message_belongs_to_the_run_and_handmade_messages_get_its_run_id() -> None:
    from flwr.app import Message, MessageType, RecordDict
    from flwr.serverapp import Grid

    pushed: list[fedlab.Message] = []

    class Recording(fedlab.Grid):
        def get_node_ids(self) -> list[int]:
            return [1]

        def get_node_config(self, node_id: int) -> dict[str, bool | int | float | str]:
            return {}

        def push_messages(self, messages: object) -> list[str]:
            pushed.extend(messages)  # type: ignore[call-overload]
            return [m.metadata.message_id for m in pushed]

        def pull_messages(self, message_ids: object) -> list[fedlab.Message]:
            return []

    grid = Grid(Recording(run_id=42))
    made = grid.create_message(RecordDict(), MessageType.QUERY, 1, "1")
    assert made.metadata.run_id == 42 and isinstance(made, Message)
    grid.push_messages([Message(RecordDict(), dst_node_id=1, message_type="query")])
    assert pushed[0].metadata.run_id == 42


def test_flower_log_writes_to_the_flwr_logger(caplog: pytest.LogCaptureFixture) -> None:
    from flwr.common.logger import log

    with caplog.at_level(logging.INFO, logger="flwr"):
        log(logging.INFO, "round %s done", 3)
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("flwr", "round 3 done")]


def test_flwr_datasets_builds_fedlabs_federated_dataset_offline() -> None:
    from flwr_datasets import FederatedDataset
    from flwr_datasets.partitioner import IidPartitioner

    fds = FederatedDataset(dataset="iris", partitioners={"train": IidPartitioner(num_partitions=3)})
    assert isinstance(fds, fedlab.datasets.FederatedDataset)
    assert [len(fds.load_partition(i)) for i in range(3)] == [50, 50, 50]


def test_run_simulation_refuses_unknown_backends_and_backend_config_keys() -> None:
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    with pytest.raises(flower.FlowerCompatError, match="backend_name='dask'"):
        run_simulation(ServerApp(), ClientApp(), 2, backend_name="dask")
    with pytest.raises(flower.FlowerCompatError, match=r"'gpus'.*client_resources"):
        run_simulation(ServerApp(), ClientApp(), 2, backend_config={"gpus": 1})


def test_a_mod_may_replace_the_reply_content_as_in_flower() -> None:
    from flwr.app import Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    def relabel(msg: Message, context: Context, call_next: object) -> Message:
        reply = call_next(msg, context)  # type: ignore[operator]
        reply.content = RecordDict({"metrics": MetricRecord({"wrapped": 1})})
        return reply  # type: ignore[no-any-return]

    app = ClientApp(mods=[relabel])

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        return Message(RecordDict({"metrics": MetricRecord({"raw": 1})}), reply_to=msg)

    instruction = Message(RecordDict(), dst_node_id=2, message_type="query")
    reply = app(instruction, fedlab.Context(run_id=0, node_id=2))
    assert dict(reply.content["metrics"]) == {"wrapped": 1}
    assert dict(reply.with_metadata(ttl=5.0).content["metrics"]) == {"wrapped": 1}


def test_grid_get_nodes_names_the_supported_alternative() -> None:
    from flwr.serverapp import Grid

    class Empty(fedlab.Grid):
        def get_node_ids(self) -> list[int]:
            return []

        def get_node_config(self, node_id: int) -> dict[str, bool | int | float | str]:
            return {}

        def push_messages(self, messages: object) -> list[str]:
            return []

        def pull_messages(self, message_ids: object) -> list[fedlab.Message]:
            return []

    with pytest.raises(flower.FlowerCompatError, match=r"get_node_ids\(\)"):
        Grid(Empty(run_id=1)).get_nodes()

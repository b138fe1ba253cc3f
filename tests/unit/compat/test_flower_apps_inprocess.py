"""A Flower app (mods, a custom ServerApp querying the Grid) run by ``run_simulation``."""

from __future__ import annotations

import numpy as np
import pytest

from fedlab.compat import flower


def test_run_simulation_runs_mods_in_order_and_a_grid_query_analytics_app() -> None:
    with flower.enabled():
        from flwr.app import ArrayRecord, Message, MessageType, MetricRecord, RecordDict
        from flwr.clientapp import ClientApp
        from flwr.serverapp import ServerApp
        from flwr.simulation import run_simulation

        calls: list[str] = []

        def tag(name: str):  # type: ignore[no-untyped-def]
            def mod(msg, context, call_next):  # type: ignore[no-untyped-def]
                calls.append(name)
                return call_next(msg, context)

            return mod

        client = ClientApp(mods=[tag("outer"), tag("inner")])

        @client.query()
        def query(msg, context):  # type: ignore[no-untyped-def]
            pid = context.node_config["partition-id"]
            data = np.arange(4, dtype=np.float64) + pid
            reply = RecordDict(
                {
                    "stats": MetricRecord({"sum": float(data.sum()), "count": 4}),
                    "sample": ArrayRecord([data]),
                }
            )
            return Message(reply, reply_to=msg)

        server = ServerApp()
        seen: dict[str, float] = {}

        @server.main()
        def main(grid, context):  # type: ignore[no-untyped-def]
            nodes = list(grid.get_node_ids())
            messages = [
                Message(
                    content=RecordDict(),
                    message_type=MessageType.QUERY,
                    dst_node_id=n,
                    group_id="1",
                )
                for n in nodes
            ]
            replies = grid.send_and_receive(messages)
            seen["sum"] = sum(r.content["stats"]["sum"] for r in replies)
            seen["count"] = sum(r.content["stats"]["count"] for r in replies)
            seen["first"] = float(
                sum(r.content["sample"].to_numpy_ndarrays()[0][0] for r in replies)
            )

        run_simulation(server_app=server, client_app=client, num_supernodes=5)

    # partition p holds p, p+1, p+2, p+3: sum 4p + 6 over p = 0..4
    assert seen == {"sum": 4 * 10 + 6 * 5, "count": 20, "first": 10.0}
    assert calls == ["outer", "inner"] * 5


def test_client_side_adaptive_clipping_works_with_the_layers_adaptiveclipping_mod() -> None:
    with flower.enabled():
        from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
        from flwr.clientapp import ClientApp
        from flwr.clientapp.mod import adaptiveclipping_mod
        from flwr.serverapp import ServerApp
        from flwr.serverapp.strategy import DifferentialPrivacyClientSideAdaptiveClipping, FedAvg
        from flwr.simulation import run_simulation

        client = ClientApp(mods=[adaptiveclipping_mod])

        @client.train()
        def train(msg, context):  # type: ignore[no-untyped-def]
            moved = [a + 10.0 for a in msg.content["arrays"].to_numpy_ndarrays()]
            metrics = MetricRecord({"num-examples": 1})
            return Message(
                RecordDict({"arrays": ArrayRecord(moved), "metrics": metrics}), reply_to=msg
            )

        server = ServerApp()
        out: dict[str, object] = {}

        @server.main()
        def main(grid, context):  # type: ignore[no-untyped-def]
            dp = DifferentialPrivacyClientSideAdaptiveClipping(
                FedAvg(fraction_evaluate=0.0),
                noise_multiplier=0.0,
                num_sampled_clients=4,
                initial_clipping_norm=2.0,
            )
            result = dp.start(
                grid=grid, initial_arrays=ArrayRecord([np.zeros(1, np.float32)]), num_rounds=1
            )
            out["arrays"] = result.arrays.to_numpy_ndarrays()[0].tolist()
            out["norm"] = dp.clipping_norm

        run_simulation(server_app=server, client_app=client, num_supernodes=4)

    # every update (10) was clipped to 2 on the clients: all clipped, so C shrinks by exp(-0.2 * 0.5)
    assert out["arrays"] == [2.0]
    assert out["norm"] == pytest.approx(2.0 * np.exp(-0.2 * (1.0 - 0.5)))

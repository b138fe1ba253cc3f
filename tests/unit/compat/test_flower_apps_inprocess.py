"""A Flower app (mods, a custom ServerApp querying the Grid) run by ``run_simulation``."""

from __future__ import annotations

import numpy as np

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

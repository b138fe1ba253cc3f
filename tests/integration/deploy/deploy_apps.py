"""ClientApps the deployment tests pin on SuperNodes with ``--app tests.integration.deploy.deploy_apps:...``."""

from __future__ import annotations

import time
from pathlib import Path

from fedlab import ClientApp, Context, Message
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict


def echo_app() -> ClientApp:
    """Replies with the arrays it received; ``config["sleep"]`` seconds of "training" first.

    With ``config["marker_dir"]`` it first writes ``started-<partition-id>-<round>`` there,
    so a test knows the node is busy with that round.
    """
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        config = msg.content["config"]
        assert isinstance(config, ConfigRecord)
        partition = int(ctx.node_config.get("partition-id", 0))
        marker_dir = config.get("marker_dir")
        if isinstance(marker_dir, str):
            (Path(marker_dir) / f"started-{partition}-{config['server-round']}").touch()
        time.sleep(float(config.get("sleep", 0.0)))  # type: ignore[arg-type]
        arrays = msg.content["arrays"]
        assert isinstance(arrays, ArrayRecord)
        metrics = MetricRecord({"num-examples": partition + 1, "partition": partition})
        return msg.reply(RecordDict({"arrays": arrays, "metrics": metrics}))

    return app

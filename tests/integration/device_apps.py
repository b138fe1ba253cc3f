"""A ClientApp that reports its device, in a module Ray's workers can import by name."""

from __future__ import annotations

import fedlab as fl


def device_number(device: str) -> int:
    """``cuda:N`` -> N, ``cpu`` -> -1: a device as a metric value."""
    return -1 if device == "cpu" else int(device.split(":")[1])


def reporting_app() -> fl.ClientApp:
    """A ClientApp that only reports the device it was given; it needs no GPU."""
    app = fl.ClientApp()

    @app.train()
    def train(msg: fl.Message, ctx: fl.Context) -> fl.Message:
        metrics = {"num-examples": 1, "device": device_number(fl.client_device(ctx))}
        return msg.reply(fl.RecordDict({"arrays": msg.content["arrays"],
                                        "metrics": fl.MetricRecord(metrics)}))  # fmt: skip

    return app

"""The client-side DP wrappers with the real clipping Mods on the clients, end to end."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fedlab import Federation
from fedlab.client import ClientApp
from fedlab.message import Message
from fedlab.mods import adaptiveclipping_mod, fixedclipping_mod
from fedlab.privacy import DPClientAdaptive, DPClientFixed
from fedlab.records import ArrayRecord, MetricRecord, RecordDict
from fedlab.strategy import FedAvg

#: Client i moves every weight by STEP * (i + 1): update norms 2, 4, 6, 8 on 4 weights.
STEP = 1.0


def app(mod: Any) -> ClientApp:
    client = ClientApp(mods=[mod])

    @client.train()
    def train(msg: Message, ctx: Any) -> Message:
        w = msg.content["arrays"].to_numpy()[0]
        moved = w + STEP * (ctx.node_config["partition-id"] + 1)
        return msg.reply(RecordDict({"arrays": ArrayRecord([moved]), "metrics": MetricRecord({"num-examples": 1})}))

    return client


@pytest.mark.parametrize(("wrapper", "mod", "extra"), [
    (DPClientFixed, fixedclipping_mod, {"clipping_norm": 3.0}),
    (DPClientAdaptive, adaptiveclipping_mod, {"initial_clipping_norm": 3.0}),
])  # fmt: skip
def test_clients_clip_with_the_mod_and_the_noiseless_aggregate_is_the_mean_of_clipped_updates(
    wrapper: Any, mod: Any, extra: dict[str, float]
) -> None:
    strategy = wrapper(FedAvg(fraction_evaluate=0.0), noise_multiplier=0.0, num_sampled_clients=4, **extra)
    fed = Federation(app(mod), strategy=strategy, num_clients=4, initial_arrays=[np.zeros(4)], seed=0,
                     display="none", backend="inline")  # fmt: skip
    result = fed.run(rounds=1)
    # Norms 2, 4, 6, 8 clipped to 3: updates of norm 2, 3, 3, 3 along (1, 1, 1, 1) / 2.
    expected = np.mean([2.0, 3.0, 3.0, 3.0]) / 2
    np.testing.assert_allclose(result.arrays.to_numpy()[0], np.full(4, expected), rtol=1e-12)

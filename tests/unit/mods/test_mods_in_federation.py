"""The Mods in a real Federation run with the inline backend."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from fedlab import ArrayRecord, ClientApp, Context, Federation, Message, MetricRecord, RecordDict
from fedlab.client.mod import Mod
from fedlab.mods import LocalDpMod, adaptiveclipping_mod, arrays_size_mod, message_size_mod
from fedlab.strategy import FedAvg

CLIP = 0.5


def client(mods: Sequence[Mod]) -> ClientApp:
    app = ClientApp(mods=mods)

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid = int(ctx.node_config["partition-id"])
        w = msg.content["arrays"].to_numpy()[0] + (pid + 1)  # type: ignore[union-attr]  # norm 2(pid+1) > C
        return msg.reply(
            RecordDict(
                {
                    "arrays": ArrayRecord([w]),
                    "metrics": MetricRecord({"num-examples": pid + 1}),
                }
            )
        )

    return app


def run(mods: Sequence[Mod], rounds: int = 3, seed: int = 0) -> Federation:
    fed = Federation(
        client(mods),
        strategy=FedAvg(fraction_train=1.0, fraction_evaluate=0.0),
        num_clients=4,
        initial_arrays=[np.zeros(4)],
        config={"dp-clipping-norm": CLIP},
        seed=seed,
        display="none",
    )
    return fed


def test_clipped_updates_average_to_c_per_round_and_sizes_and_norm_bits_reach_the_history() -> None:
    result = run([message_size_mod, arrays_size_mod, adaptiveclipping_mod]).run(rounds=3)
    # Every update is (pid+1)*ones(4), clipped to norm 0.5: 0.25*ones(4), whatever the weight.
    np.testing.assert_allclose(result.arrays["0"].numpy(), np.full(4, 3 * 0.25), rtol=1e-12)
    history = result.history
    assert history is not None
    bits = history.client_metric("dp-norm-bit")
    assert len(bits) == 4 and all(v == {1: 0, 2: 0, 3: 0} for v in bits.values())
    assert all(set(v.values()) == {32} for v in history.client_metric("arrays-bytes-in").values())
    sizes = [s for v in history.client_metric("message-bytes-in").values() for s in v.values()]
    assert len(sizes) == 12 and min(sizes) > 32


def test_local_dp_noise_moves_the_model_around_the_clipped_average_by_its_std() -> None:
    mod = LocalDpMod(clipping_norm=CLIP, sensitivity=2 * CLIP, epsilon=0.9, delta=1e-5, seed=3)
    first = run([mod]).run(rounds=1).arrays["0"].numpy()
    again = run([mod]).run(rounds=1).arrays["0"].numpy()
    np.testing.assert_array_equal(first, again)  # seeded: reproducible
    # Each client sends 0.25*ones + N(0, s^2); FedAvg weights them 1..4 out of 10.
    weights = np.arange(1, 5) / 10
    spread = mod.noise_std * float(np.sqrt((weights**2).sum()))
    assert not np.allclose(first, 0.25)
    assert np.all(np.abs(first - 0.25) < 5 * spread)
    assert spread == pytest.approx(mod.noise_std * np.sqrt(0.3))

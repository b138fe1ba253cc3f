"""SecAgg+ overhead: seconds per round and bytes per client, against plain FedAvg.

Simulation, inline backend, a 100,000-parameter model (float32), every client sampled,
trivial local training (so the time is the protocol's). Bytes are the encoded sizes
(fedlab's wire codec) of every message a client receives and sends in a round, all
stages together. Run: ``python bench/secagg.py``.
"""

from __future__ import annotations

import math
import time

import numpy as np

import fedlab as fl
from fedlab import ArrayRecord, ClientApp, Context, Message, MetricRecord, RecordDict
from fedlab.client.mod import CallNext
from fedlab.mods.secagg import secaggplus_mod
from fedlab.privacy.secagg import SecAggPlus
from fedlab.strategy import FedAvg
from fedlab.wire.codec import encode_message

PARAMS = 100_000
ROUNDS = 2
BYTES: dict[str, int] = {"in": 0, "out": 0}


def count_bytes(msg: Message, ctx: Context, call_next: CallNext) -> Message:
    """Add the encoded size of the instruction and of the reply to BYTES."""
    BYTES["in"] += len(encode_message(msg))
    reply = call_next(msg, ctx)
    BYTES["out"] += len(encode_message(reply))
    return reply


def make_app(secure: bool, measure: bool) -> ClientApp:
    mods = ([count_bytes] if measure else []) + ([secaggplus_mod] if secure else [])
    app = ClientApp(mods=mods)

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid = int(ctx.node_config["partition-id"])
        arrays = {k: a.numpy() + np.float32(0.001 * (pid + 1)) for k, a in msg.content["arrays"].items()}  # type: ignore[union-attr]
        return msg.reply(RecordDict({"arrays": ArrayRecord(arrays), "metrics": MetricRecord({"num-examples": 10})}))

    return app


def strategy(n: int, secure: bool) -> fl.strategy.Strategy:
    base = FedAvg(fraction_evaluate=0.0, min_train_nodes=n, min_available_nodes=n)
    if not secure:
        return base
    shares = min(n, 2 * math.ceil(math.log2(n)) + 1)  # O(log n) neighbours (Bell et al.)
    return SecAggPlus(base, num_shares=shares, reconstruction_threshold=shares // 2 + 1, clipping_range=1.0)


def measure(n: int, secure: bool) -> tuple[float, float]:
    """Seconds per round, and bytes per client per round (in + out)."""
    initial = [np.zeros(PARAMS, np.float32)]
    fed = fl.Federation(make_app(secure, False), strategy(n, secure), num_clients=n, initial_arrays=initial,
                        seed=1, display="none", timeout=600)  # fmt: skip
    started = time.perf_counter()
    fed.run(rounds=ROUNDS)
    seconds = (time.perf_counter() - started) / ROUNDS
    BYTES.update({"in": 0, "out": 0})
    fl.Federation(make_app(secure, True), strategy(n, secure), num_clients=n, initial_arrays=initial,
                  seed=1, display="none", timeout=600).run(rounds=1)  # fmt: skip
    return seconds, (BYTES["in"] + BYTES["out"]) / n


def main() -> None:
    print(f"SecAgg+ overhead, {PARAMS:,} float32 parameters, inline backend, {ROUNDS} rounds")
    header = f"{'clients':>7} {'k':>3} {'FedAvg s/round':>14} {'SecAgg+ s/round':>15} {'x':>5} {'FedAvg MB/client':>16} {'SecAgg+ MB/client':>17}"
    print(header)
    print("-" * len(header))
    for n in (10, 50, 100):
        plain_s, plain_b = measure(n, False)
        secure_s, secure_b = measure(n, True)
        k = min(n, 2 * math.ceil(math.log2(n)) + 1)
        print(f"{n:>7} {k:>3} {plain_s:>14.3f} {secure_s:>15.3f} {secure_s / plain_s:>5.1f} "
              f"{plain_b / 1e6:>16.3f} {secure_b / 1e6:>17.3f}")  # fmt: skip


if __name__ == "__main__":
    main()

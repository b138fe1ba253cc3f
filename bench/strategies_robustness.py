"""Robust aggregation under attack: 20 digits clients, 4 of them malicious.

Every client trains a softmax-regression model (64 pixels -> 10 digits, numpy) for a
few local epochs on its IID shard of scikit-learn's digits. In the attacked runs four
clients (partitions 3, 8, 12 and 17) reply with poisoned models instead:

- ``sign-flip``: the honest update, reversed and scaled: x − 10·(y − x);
- ``gaussian``: the global model plus N(0, 5²) noise in every coordinate;
- ``mixed``: partitions 3 and 12 flip signs, 8 and 17 send Gaussian noise.

Each strategy is run with f = 4 declared malicious nodes and the seeded inline backend,
so every number below is reproducible. The table is the held-out accuracy after the
last round. Usage::

    python bench/strategies_robustness.py                 # every strategy x every scenario
    python bench/strategies_robustness.py --rounds 20 --seed 1
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the checkout

import fedlab as fl
from fedlab.context import Context
from fedlab.demo import load_digits_data, partition
from fedlab.message import Message
from fedlab.records import ArrayRecord, MetricRecord, RecordDict
from fedlab.strategy import Bulyan, FedAvg, FedMedian, FedTrimmedAvg, Krum, MultiKrum, Strategy

NUM_CLIENTS = 20
NUM_MALICIOUS = 4
#: partition id -> attack, for the "mixed" scenario; the others use one attack for all four.
MIXED = {3: "sign-flip", 8: "gaussian", 12: "sign-flip", 17: "gaussian"}
SCENARIOS = ("clean", "sign-flip", "gaussian", "mixed")
LOCAL_EPOCHS, BATCH, LR = 2, 16, 0.5
FLIP_SCALE, NOISE_STD = 10.0, 5.0

STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "FedAvg": lambda: FedAvg(fraction_evaluate=0.0),
    "FedMedian": lambda: FedMedian(num_malicious_nodes=NUM_MALICIOUS, fraction_evaluate=0.0),
    "FedTrimmedAvg(0.25)": lambda: FedTrimmedAvg(0.25, num_malicious_nodes=NUM_MALICIOUS, fraction_evaluate=0.0),
    "Krum": lambda: Krum(num_malicious_nodes=NUM_MALICIOUS, fraction_evaluate=0.0),
    "MultiKrum": lambda: MultiKrum(num_malicious_nodes=NUM_MALICIOUS, fraction_evaluate=0.0),
    "Bulyan": lambda: Bulyan(num_malicious_nodes=NUM_MALICIOUS, fraction_evaluate=0.0),
}

Floats = npt.NDArray[np.float32]


def initial_arrays() -> ArrayRecord:
    """A zero softmax-regression model."""
    return ArrayRecord({"weight": np.zeros((64, 10), np.float32), "bias": np.zeros(10, np.float32)})


def accuracy(arrays: ArrayRecord, x: Floats, y: npt.NDArray[np.int64]) -> float:
    """Held-out accuracy of the model in ``arrays``."""
    logits = x @ arrays["weight"].numpy() + arrays["bias"].numpy()
    return float((logits.argmax(axis=1) == y).mean())


def local_sgd(weight: Floats, bias: Floats, x: Floats, y: npt.NDArray[np.int64], rng: np.random.Generator) -> tuple[Floats, Floats, int]:
    """Minibatch SGD on the softmax cross-entropy; returns the model and the number of steps."""
    w, b, steps = weight.astype(np.float64), bias.astype(np.float64), 0
    onehot = np.eye(10)[y]
    for _ in range(LOCAL_EPOCHS):
        order = rng.permutation(len(x))
        for start in range(0, len(x), BATCH):
            idx = order[start : start + BATCH]
            logits = x[idx] @ w + b
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            grad = (p - onehot[idx]) / len(idx)
            w -= LR * (x[idx].T @ grad)
            b -= LR * grad.sum(axis=0)
            steps += 1
    return w.astype(np.float32), b.astype(np.float32), steps


def attack_of(scenario: str, partition_id: int) -> str:
    """What partition ``partition_id`` does in ``scenario``: "" for honest clients."""
    if scenario == "clean" or partition_id not in MIXED:
        return ""
    return MIXED[partition_id] if scenario == "mixed" else scenario


@lru_cache(maxsize=1)
def _client_app() -> fl.ClientApp:
    app = fl.ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        seed, pid = int(ctx.run_config["seed"]), int(ctx.node_config["partition-id"])
        rnd = int(msg.content.config_record("config")["server-round"])  # type: ignore[arg-type]
        x_train, y_train, _, _ = load_digits_data(seed)
        rows = partition(int(ctx.node_config["num-partitions"]), pid, seed)
        arrays = msg.content.array_record("arrays")
        x0, b0 = arrays["weight"].numpy(), arrays["bias"].numpy()
        rng = np.random.default_rng([seed, pid, rnd])
        w, b, _ = local_sgd(x0, b0, x_train[rows], y_train[rows], rng)
        attack = str(ctx.node_config.get("attack", ""))
        if attack == "sign-flip":
            w, b = x0 - FLIP_SCALE * (w - x0), b0 - FLIP_SCALE * (b - b0)
        elif attack == "gaussian":
            w = x0 + rng.normal(0.0, NOISE_STD, x0.shape).astype(np.float32)
            b = b0 + rng.normal(0.0, NOISE_STD, b0.shape).astype(np.float32)
        trained = ArrayRecord({"weight": w.astype(np.float32), "bias": b.astype(np.float32)})
        return msg.reply(RecordDict({"arrays": trained, "metrics": MetricRecord({"num-examples": len(rows)})}))

    return app


def build(strategy: str, scenario: str, rounds: int = 10, seed: int = 0) -> fl.Federation:
    """The seeded federation for ``strategy`` under ``scenario``, evaluated after the last round."""
    _, _, x_test, y_test = load_digits_data(seed)
    return fl.Federation(
        _client_app(),
        strategy=STRATEGIES[strategy](),
        num_clients=NUM_CLIENTS,
        node_configs=[{"attack": attack_of(scenario, p)} for p in range(NUM_CLIENTS)],
        initial_arrays=initial_arrays(),
        config={"seed": seed},
        evaluate_fn=lambda rnd, arrays: {"accuracy": accuracy(arrays, x_test, y_test)} if rnd == rounds else None,
        seed=seed,
        display="none",
    )


def run(strategy: str, scenario: str, rounds: int = 10, seed: int = 0) -> float:
    """Train with ``strategy`` under ``scenario``; return the final held-out accuracy."""
    result = build(strategy, scenario, rounds, seed).run(rounds=rounds)
    return float(result.evaluate_metrics_serverapp[rounds]["accuracy"])


def table(rounds: int, seed: int, strategies: Sequence[str] = tuple(STRATEGIES), scenarios: Sequence[str] = SCENARIOS) -> dict[str, dict[str, float]]:
    """Accuracy for every (strategy, scenario)."""
    return {s: {c: run(s, c, rounds, seed) for c in scenarios} for s in strategies}


def main(argv: Sequence[str] | None = None) -> int:
    """Print the accuracy table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = table(args.rounds, args.seed)
    clean = results["FedAvg"]["clean"]
    print(f"digits, {NUM_CLIENTS} clients ({NUM_MALICIOUS} malicious: partitions {sorted(MIXED)}), "
          f"{args.rounds} rounds, seed {args.seed}; final held-out accuracy")
    print(f"{'strategy':<20}" + "".join(f"{c:>11}" for c in SCENARIOS) + f"{'worst drop':>12}")
    for name, row in results.items():
        drop = max(clean - row[c] for c in SCENARIOS[1:])
        print(f"{name:<20}" + "".join(f"{row[c]:>11.4f}" for c in SCENARIOS) + f"{100 * drop:>10.1f}pt")
    print(f"(worst drop = clean FedAvg accuracy {clean:.4f} minus the worst attacked accuracy; "
          f"{time.perf_counter() - started:.1f}s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""W2's torch floor: the same 20 clients trained one after another in a plain loop.

No framework, no messages: per round, each client loads the global weights into a fresh
MLP 64-64-10, runs one epoch of SGD (lr 0.05, batch 32) on its shard, and the weighted
average of the clients' weights becomes the next global model. Torch runs on one thread,
as each worker of fedlab's processes backend does by default. Compare its round time with
``python bench/simulation.py --one w2 --backend inline`` and ``--backend processes``.

    python bench/torch_floor.py --clients 20 --rounds 10
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from simulation import flower_digits_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x_train, y_train, _x_test, _y_test, shards = flower_digits_split(0, args.clients)

    def make_model() -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))

    torch.manual_seed(0)
    global_state = {k: v.clone() for k, v in make_model().state_dict().items()}
    rounds = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        total = {k: torch.zeros_like(v, dtype=torch.float64) for k, v in global_state.items()}
        examples = 0
        for pid in range(args.clients):
            x, y = torch.from_numpy(x_train[shards[pid]]), torch.from_numpy(y_train[shards[pid]])
            model = make_model()
            model.load_state_dict(global_state)
            opt = torch.optim.SGD(model.parameters(), lr=0.05)
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(pid))
            for i in range(0, len(x), 32):
                b = order[i : i + 32]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x[b]), y[b]).backward()
                opt.step()
            for k, v in model.state_dict().items():
                total[k] += v.double() * len(x)
            examples += len(x)
        global_state = {k: (v / examples).float() for k, v in total.items()}
        rounds.append(time.perf_counter() - started)
    print("RESULT " + json.dumps({"round_s": [round(r, 4) for r in rounds]}))


if __name__ == "__main__":
    main()

"""The physical floor of W1: its copies, additions and weighted sum in plain numpy.

Per round, for each client: the client's copy of the global array, ``arr + 0.001`` (a new
array, as the client's reply), and the server's running weighted sum in float64; then the
cast back to float32. No framework, no messages: what any runtime must at least spend.

    python bench/floor.py --clients 100 --rounds 5 --params 1000000
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--params", type=int, default=1_000_000)
    args = parser.parse_args()
    global_arr = np.zeros(args.params, dtype=np.float32)
    rounds = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        acc = np.zeros(args.params, dtype=np.float64)
        for _client in range(args.clients):
            received = global_arr.copy()
            reply = received + np.float32(0.001)
            acc += reply * 1.0
        global_arr = (acc / args.clients).astype(np.float32)
        rounds.append(time.perf_counter() - started)
    print("RESULT " + json.dumps({"round_s": [round(r, 4) for r in rounds],
                                  "final_value": float(global_arr[0])}))


if __name__ == "__main__":
    main()

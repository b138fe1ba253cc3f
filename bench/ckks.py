"""Cost of homomorphic FedAvg per parameter: bytes on the wire and seconds per operation.

Parameters: the defaults of ``fedlab.mods.ckks.ckks_keys`` (poly modulus degree 8192,
coefficient moduli 60-40-40-60 bits, global scale 2**40; 4,096 values per ciphertext).
For a model of ``--params`` float32 values (normal, std 1) and ``--clients`` replies of
``num-examples`` 10, 20, ...: the time a client takes to encrypt its arrays
(``encrypt_arrays``), the time the server takes per reply to multiply by the weight and add
(``CkksFedAvg.aggregate_train``'s work), the time a client takes to decrypt and divide
(``decrypt_arrays``), the bytes of one reply's ciphertexts against the plaintext
float32 bytes, and the largest absolute error of the decrypted mean over ``--repeats``
runs (fresh encryption noise each time). Usage::

    python bench/ckks.py                     # 100,000 parameters, 5 clients
    python bench/ckks.py --params 10000 --clients 10 --repeats 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tenseal as ts

from fedlab.mods.ckks import ckks_keys, decrypt_arrays, encrypt_arrays, load_context, slots_of
from fedlab.records import ArrayRecord, ConfigRecord


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    keys = ckks_keys()
    secret, public = load_context(keys.secret), load_context(keys.public)
    slots = slots_of(secret)
    rng = np.random.default_rng(0)
    enc_s = add_s = dec_s = 0.0
    worst = 0.0
    reply_bytes = 0
    for _ in range(args.repeats):
        updates = [rng.normal(size=args.params).astype(np.float32) for _ in range(args.clients)]
        weights = [10.0 * (k + 1) for k in range(args.clients)]
        started = time.perf_counter()
        replies = [encrypt_arrays(ArrayRecord({"w": u}), public, slots) for u in updates]
        enc_s += (time.perf_counter() - started) / args.clients
        reply_bytes = sum(len(b) for b in replies[0]["ciphertexts"])  # type: ignore[union-attr]
        started = time.perf_counter()
        total = None
        for record, weight in zip(replies, weights):
            scaled = [ts.ckks_vector_from(public, b) * weight for b in record["ciphertexts"]]  # type: ignore[union-attr]
            total = scaled if total is None else [a + b for a, b in zip(total, scaled)]
        aggregate = ConfigRecord({
            "layout": str(replies[0]["layout"]),
            "ciphertexts": [c.serialize() for c in total or []],
            "total-weight": sum(weights),
        })
        add_s += (time.perf_counter() - started) / args.clients
        started = time.perf_counter()
        mean = decrypt_arrays(aggregate, secret).to_numpy()[0]
        dec_s += time.perf_counter() - started
        plain = sum(w * u.astype(np.float64) for w, u in zip(weights, updates)) / sum(weights)
        worst = max(worst, float(np.max(np.abs(mean.astype(np.float64) - plain))))
    n, r = args.params, args.repeats
    print(f"CKKS degree 8192, moduli 60-40-40-60, scale 2**40; {n:,} parameters, "
          f"{args.clients} clients, {r} repeats")
    print(f"ciphertext bytes per parameter : {reply_bytes / n:8.1f}  (float32: 4.0; "
          f"{reply_bytes / (4 * n):.0f}x), {reply_bytes / 2**20:.1f} MiB per reply")
    print(f"encrypt  (client)  per param  : {enc_s / r / n * 1e6:8.3f} us  ({enc_s / r:.3f} s per reply)")
    print(f"scale+add (server) per param  : {add_s / r / n * 1e6:8.3f} us  ({add_s / r:.3f} s per reply)")
    print(f"decrypt  (client)  per param  : {dec_s / r / n * 1e6:8.3f} us  ({dec_s / r:.3f} s per aggregate)")
    print(f"max abs error of the mean      : {worst:.2e}")


if __name__ == "__main__":
    main()

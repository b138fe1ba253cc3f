"""SecAgg+ as a protocol: clients and server functions driven directly, without a Grid."""

from __future__ import annotations

import random

import numpy as np
import pytest

from fedlab.privacy.secagg import client, shamir
from fedlab.privacy.secagg.protocol import SecAggError
from fedlab.privacy.secagg.quantize import dequantize, error_bound, quantize
from fedlab.privacy.secagg.server import SecAggRound, neighbour_graph

C, Q, M = 4.0, 2**16, 2**40
PARAMS = {"clipping-range": C, "quantization-range": Q, "modulus-range": M, "max-weight": 100}


def run_protocol(updates, weights, *, num_shares, threshold, drop_before_vector=(), drop_before_unmask=()):
    """Run one round for len(updates) clients; return (server sum, round, quantised inputs)."""
    nodes = [100 + k for k in range(len(updates))]
    rnd = SecAggRound(nodes, num_shares=num_shares, threshold=threshold, modulus_range=M, rng=random.Random(1))
    states, keys = {}, {}
    for node in nodes:
        states[node], reply = client.setup({**rnd.setup(node), **PARAMS}, 1)
        keys[node] = (reply["pk-c"], reply["pk-s"])
    shares = {}
    for node, cfg in rnd.share_keys(keys).items():
        reply = client.share_keys(states[node], cfg, 1)
        shares[node] = (reply["dst"], reply["ciphertexts"])
    masked = {}
    for node, cfg in rnd.route(shares).items():
        client.collect(states[node], cfg, 1)
        if node not in drop_before_vector:
            k = nodes.index(node)
            masked[node] = client.masked_vector(states[node], updates[k], weights[k])
    revealed = {}
    for node, cfg in rnd.unmask_requests(masked).items():
        if node not in drop_before_unmask:
            revealed[node] = client.unmask(states[node], cfg, 1)
    return rnd.unmask(revealed), masked, nodes


def expected_sum(updates, weights, survivors):
    total = sum(np.uint64(w) * quantize(u, C, Q) for u, w, s in zip(updates, weights, survivors) if s)
    return np.append(total, sum(w for w, s in zip(weights, survivors) if s)).astype(np.uint64) % np.uint64(M)


def make_updates(n, d=50, seed=0):
    gen = np.random.default_rng(seed)
    return [gen.normal(0, 1.5, d) for _ in range(n)], [int(w) for w in gen.integers(1, 100, n)]


def test_shamir_any_threshold_shares_rebuild_the_secret_and_fewer_refuse():
    secret = bytes(range(32))
    shares = shamir.split(secret, range(1, 8), threshold=4)
    for chosen in ([1, 2, 3, 4], [7, 5, 3, 1], [2, 4, 6, 7]):
        assert shamir.combine({x: shares[x] for x in chosen}, 4) == secret
    with pytest.raises(shamir.ShamirError, match="3 share\\(s\\) received but 4 are needed"):
        shamir.combine({x: shares[x] for x in (1, 2, 3)}, 4)


def test_neighbour_graph_is_regular_and_symmetric():
    for n, k in [(10, 5), (10, 4), (9, 4), (7, 3), (4, 10)]:
        graph = neighbour_graph(n, k, random.Random(n))
        degrees = {len(v) for v in graph.values()}
        assert len(degrees) == 1
        assert all(i in graph[j] for i in graph for j in graph[i])
        assert degrees.pop() >= min(k, n) - 1


def test_masks_cancel_without_dropouts_and_the_server_never_sees_a_plain_vector():
    updates, weights = make_updates(8)
    total, masked, _ = run_protocol(updates, weights, num_shares=5, threshold=3)
    assert np.array_equal(total, expected_sum(updates, weights, [True] * 8))
    for u, w, vec in zip(updates, weights, masked.values()):
        plain = np.append(np.uint64(w) * quantize(u, C, Q), w)
        assert np.mean(vec == plain) < 0.05  # masked: looks nothing like the input


@pytest.mark.parametrize("when", ["vector", "unmask", "both"])
def test_unmasked_sum_equals_the_survivors_plaintext_sum_exactly_with_tolerated_dropouts(when):
    n, num_shares, threshold = 10, 5, 3  # each neighbourhood tolerates 5 - 3 = 2 dropouts
    updates, weights = make_updates(n, seed=3)
    nodes = [100 + k for k in range(n)]
    gone = {"vector": ([nodes[0], nodes[5]], []), "unmask": ([], [nodes[2], nodes[7]]),
            "both": ([nodes[1]], [nodes[6]])}[when]
    total, _, _ = run_protocol(updates, weights, num_shares=num_shares, threshold=threshold,
                               drop_before_vector=gone[0], drop_before_unmask=gone[1])
    survivors = [node not in gone[0] for node in nodes]  # dropped at unmask still sent vectors
    assert np.array_equal(total, expected_sum(updates, weights, survivors))
    # and back to floats: the weighted mean of the clipped updates within c / (Q - 1)
    w = np.array(weights) * np.array(survivors)
    mean = dequantize(total[:-1] / float(total[-1]), C, Q)
    truth = sum(wi * np.clip(u, -C, C) for wi, u in zip(w, updates)) / w.sum()
    assert np.max(np.abs(mean - truth)) <= error_bound(C, Q) + 1e-12


def test_past_the_tolerated_dropouts_reconstruction_fails_with_a_clear_error():
    updates, weights = make_updates(10, seed=4)
    nodes = [100 + k for k in range(10)]
    rnd = SecAggRound(nodes, num_shares=5, threshold=3, modulus_range=M, rng=random.Random(1))
    victim = rnd.graph[1]  # drop three holders of client 1's secrets: only 2 of 5 remain
    gone = [nodes[j - 1] for j in victim[:3]]
    with pytest.raises(SecAggError, match="cannot reconstruct .* 2 share\\(s\\) received but 3 are needed"):
        run_protocol(updates, weights, num_shares=5, threshold=3, drop_before_unmask=gone)

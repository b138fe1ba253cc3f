"""The server's side of SecAgg+: the neighbour graph, routing, and unmasking the sum.

:class:`SecAggRound` holds one round's public bookkeeping and nothing secret: the
clients' public keys, the encrypted shares it forwards (which it cannot open), the
masked vectors and, at the end, the shares revealed to remove the masks. It sees no
individual update: what it reconstructs is the self-mask seed of every survivor and the
``s`` private key of every dropped client, never both for one client, so only the sum
of the survivors' vectors comes out.

Tolerance: every client's secrets are shared among its ``num_shares`` holders (itself
and ``num_shares - 1`` neighbours); any ``reconstruction_threshold`` of them rebuild a
secret. So a round completes while every client keeps at least that many holders alive
to the end: up to ``num_shares - reconstruction_threshold`` dropouts per neighbourhood.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fedlab.privacy.secagg import crypto, shamir
from fedlab.privacy.secagg.client import MASK_LABEL
from fedlab.privacy.secagg.protocol import SecAggError

__all__ = ["SecAggRound", "neighbour_graph"]


def neighbour_graph(num_clients: int, num_shares: int, rng: random.Random) -> dict[int, list[int]]:
    """A random regular graph on indices ``1..num_clients``: index → sorted neighbours.

    Each client gets ``num_shares - 1`` neighbours (all others when ``num_shares`` is at
    least ``num_clients``): the clients are placed on a ring in random order and each is
    joined to the ``h = (num_shares - 1) // 2`` nearest on either side; an odd degree adds
    the opposite client, which needs an even ``num_clients`` (else the degree is rounded up).
    """
    degree = min(num_shares, num_clients) - 1
    order = list(range(1, num_clients + 1))
    rng.shuffle(order)
    half = degree // 2
    if degree % 2 and num_clients % 2:
        half += 1  # no regular graph of odd degree on an odd number of vertices
    offsets = set(range(1, half + 1)) | {-k for k in range(1, half + 1)}
    if degree % 2 and not num_clients % 2:
        offsets.add(num_clients // 2)
    graph: dict[int, list[int]] = {}
    for position, index in enumerate(order):
        near = {order[(position + k) % num_clients] for k in offsets} - {index}
        graph[index] = sorted(near)
    return graph


class SecAggRound:
    """One round's server state; call its stage methods in order (see the module doc)."""

    def __init__(
        self,
        node_ids: Sequence[int],
        *,
        num_shares: int,
        threshold: int,
        modulus_range: int,
        rng: random.Random,
    ) -> None:
        self.index = {node: k + 1 for k, node in enumerate(node_ids)}
        self.node = {k: node for node, k in self.index.items()}
        self.threshold = threshold
        self.modulus = modulus_range
        self.graph = neighbour_graph(len(node_ids), num_shares, rng)
        self.keys: dict[int, tuple[bytes, bytes]] = {}  # index -> (pk-c, pk-s)
        self.shared: set[int] = set()  # indices that sent their encrypted shares
        self.masked: dict[int, np.ndarray] = {}

    def setup(self, node: int) -> dict[str, Any]:
        """The ``setup`` instruction's content for ``node`` (without the round parameters)."""
        k = self.index[node]
        return {"index": k, "neighbours": self.graph[k], "threshold": self.threshold}

    def share_keys(self, replies: Mapping[int, tuple[bytes, bytes]]) -> dict[int, dict[str, Any]]:
        """Record the public keys (node → ``(pk-c, pk-s)``); return each responder's peers."""
        self.keys = {self.index[node]: keys for node, keys in replies.items()}
        out = {}
        for k in self.keys:
            peers = [j for j in [*self.graph[k], k] if j in self.keys]
            peers.sort()
            out[self.node[k]] = {
                "peers": peers,
                "pk-c": [self.keys[j][0] for j in peers],
                "pk-s": [self.keys[j][1] for j in peers],
            }
        return out

    def route(self, replies: Mapping[int, tuple[list[int], list[bytes]]]) -> dict[int, dict[str, Any]]:
        """Forward the ciphertexts (node → ``(dst, ciphertexts)``) to their receivers."""
        inbox: dict[int, dict[str, list[Any]]] = {}
        self.shared = {self.index[node] for node in replies}
        for k in self.shared:
            inbox[self.node[k]] = {"src": [], "ciphertexts": []}
        for node, (dst, blobs) in sorted(replies.items(), key=lambda item: self.index[item[0]]):
            for j, blob in zip(dst, blobs, strict=True):
                if j in self.shared:
                    inbox[self.node[j]]["src"].append(self.index[node])
                    inbox[self.node[j]]["ciphertexts"].append(blob)
        return inbox

    def unmask_requests(self, masked: Mapping[int, np.ndarray]) -> dict[int, dict[str, Any]]:
        """Record the masked vectors (node → vector); return each survivor's unmask request."""
        self.masked = {self.index[node]: vec for node, vec in masked.items()}
        if len(self.masked) < self.threshold:
            raise SecAggError(
                f"only {len(self.masked)} masked vector(s) arrived, fewer than "
                f"reconstruction_threshold={self.threshold}; the round cannot be unmasked."
            )
        out = {}
        for k in self.masked:
            near = [j for j in self.graph[k] if j in self.shared]
            out[self.node[k]] = {
                "alive": sorted([k, *(j for j in near if j in self.masked)]),
                "dropped": sorted(j for j in near if j not in self.masked),
            }
        return out

    def unmask(self, replies: Mapping[int, Mapping[str, Any]]) -> np.ndarray:
        """Rebuild the seeds and keys from the revealed shares; return the sum (uint64)."""
        seed_shares: dict[int, dict[int, bytes]] = {}
        key_shares: dict[int, dict[int, bytes]] = {}
        for node, reply in replies.items():
            holder = self.index[node]
            for j, share in zip(reply["alive"], reply["seed-shares"], strict=True):
                seed_shares.setdefault(int(j), {})[holder] = bytes(share)
            for j, share in zip(reply["dropped"], reply["key-shares"], strict=True):
                key_shares.setdefault(int(j), {})[holder] = bytes(share)
        modulus = self.modulus
        low = np.uint64(modulus - 1)
        length = next(iter(self.masked.values())).size
        total = np.zeros(length, dtype=np.uint64)
        for vec in self.masked.values():
            total = (total + vec) & low
        for k in sorted(self.masked):
            seed = self._rebuild(seed_shares.get(k, {}), f"the self-mask seed of client {k}")
            total = (total + (np.uint64(modulus) - crypto.mask(seed, length, modulus))) & low
        for k in sorted(self.shared - set(self.masked)):
            key = self._rebuild(key_shares.get(k, {}), f"the mask key of dropped client {k}")
            for j in self.graph[k]:
                if j not in self.masked:
                    continue  # j never sent a vector, so it added no mask with k
                pairwise = crypto.mask(crypto.agree(key, self.keys[j][1], MASK_LABEL), length, modulus)
                # j added +mask when j < k and -mask otherwise; take it back out.
                total = (total + (np.uint64(modulus) - pairwise) if j < k else total + pairwise) & low
        return total

    def _rebuild(self, shares: Mapping[int, bytes], what: str) -> bytes:
        try:
            return shamir.combine(shares, self.threshold)
        except shamir.ShamirError as exc:
            raise SecAggError(
                f"cannot reconstruct {what}: {exc} At most num_shares - "
                "reconstruction_threshold holders of each client may drop out."
            ) from None

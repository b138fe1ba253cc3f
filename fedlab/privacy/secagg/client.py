"""The client's side of SecAgg+: one function per stage over the node's private state.

The state is a ConfigRecord kept in ``context.state`` (it never leaves the node); the
stages are described in :mod:`fedlab.privacy.secagg.protocol`. Every check that protects
the client's privacy raises :class:`SecAggViolation`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag

from fedlab.privacy.secagg import crypto, shamir
from fedlab.privacy.secagg.protocol import COLLECT, SETUP, SHARE_KEYS, UNMASK, SecAggViolation
from fedlab.privacy.secagg.quantize import quantize
from fedlab.records import ConfigRecord

__all__ = ["collect", "masked_vector", "setup", "share_keys", "unmask"]

#: HKDF labels, one per use of an agreed secret.
SHARE_LABEL = b"fedlab secagg+ share encryption"
MASK_LABEL = b"fedlab secagg+ pairwise mask"


def _expect(state: Mapping[str, Any], stage: str, server_round: int) -> None:
    if state.get("next") != stage or state.get("round") != server_round:
        raise SecAggViolation(
            f"SecAggViolation: stage {stage!r} of round {server_round} arrived out of order "
            f"(this client expects {state.get('next')!r} of round {state.get('round')})."
        )


def associated_data(round_: int, src: int, dst: int) -> bytes:
    """What binds an encrypted share to its round, sender and receiver."""
    return b"%d:%d:%d" % (round_, src, dst)


def setup(config: Mapping[str, Any], server_round: int) -> tuple[ConfigRecord, dict[str, Any]]:
    """Start a round: store its parameters, make two key pairs; return (state, reply)."""
    index = int(config["index"])
    neighbours = [int(j) for j in config["neighbours"]]
    if index in neighbours or len(set(neighbours)) != len(neighbours):
        raise SecAggViolation(
            f"SecAggViolation: the neighbour list {neighbours} repeats a client or holds this "
            f"client's own index {index}."
        )
    sk_c, pk_c = crypto.generate_keypair()
    sk_s, pk_s = crypto.generate_keypair()
    state = ConfigRecord(
        {
            "round": server_round,
            "next": SHARE_KEYS,
            "index": index,
            "neighbours": neighbours,
            "threshold": int(config["threshold"]),
            "clipping-range": float(config["clipping-range"]),
            "quantization-range": int(config["quantization-range"]),
            "modulus-range": int(config["modulus-range"]),
            "max-weight": int(config["max-weight"]),
            "sk-c": sk_c,
            "sk-s": sk_s,
            "pk-c": pk_c,
            "pk-s": pk_s,
        }
    )
    return state, {"pk-c": pk_c, "pk-s": pk_s}


def share_keys(state: ConfigRecord, config: Mapping[str, Any], server_round: int) -> dict[str, Any]:
    """Check the neighbours' keys, share the secrets, encrypt one share pair per neighbour."""
    st: Any = state  # a ConfigRecord: its values are typed as any config value
    _expect(state, SHARE_KEYS, server_round)
    index, threshold = int(st["index"]), int(st["threshold"])
    peers = [int(j) for j in config["peers"]]
    pk_c, pk_s = list(config["pk-c"]), list(config["pk-s"])
    if len(set(peers)) != len(peers) or not len(peers) == len(pk_c) == len(pk_s):
        raise SecAggViolation("SecAggViolation: the peer list repeats a client or its key lists differ in length.")
    allowed = set(st["neighbours"]) | {index}
    if not set(peers) <= allowed or index not in peers:
        raise SecAggViolation(
            f"SecAggViolation: the peers {sorted(set(peers) - allowed)} are not this client's "
            "neighbours, or this client is missing from its own peer list."
        )
    keys = pk_c + pk_s
    if len(set(keys)) != len(keys):
        raise SecAggViolation(
            "SecAggViolation: duplicate public keys among the neighbours; a server that "
            "repeats a key could learn this client's masks. Refusing."
        )
    own = peers.index(index)
    if pk_c[own] != st["pk-c"] or pk_s[own] != st["pk-s"]:
        raise SecAggViolation("SecAggViolation: this client's own public keys were replaced.")
    if len(peers) < threshold:
        raise SecAggViolation(
            f"SecAggViolation: too few shares: {len(peers)} peer(s) would hold this client's "
            f"secrets but the reconstruction threshold is {threshold}."
        )
    seed = os.urandom(shamir.SECRET_BYTES)
    seed_shares = shamir.split(seed, peers, threshold)
    key_shares = shamir.split(bytes(st["sk-s"]), peers, threshold)
    dst, blobs = [], []
    for j, pk in zip(peers, pk_c, strict=True):
        if j == index:
            continue
        key = crypto.agree(bytes(st["sk-c"]), bytes(pk), SHARE_LABEL)
        plain = index.to_bytes(4, "big") + j.to_bytes(4, "big") + seed_shares[j] + key_shares[j]
        dst.append(j)
        blobs.append(crypto.encrypt(key, plain, associated_data(server_round, index, j)))
    st.update(
        {
            "next": COLLECT,
            "seed": seed,
            "peers": peers,
            "peer-pk-c": [bytes(k) for k in pk_c],
            "peer-pk-s": [bytes(k) for k in pk_s],
            "held": [index],
            "held-seed": [seed_shares[index]],
            "held-key": [key_shares[index]],
        }
    )
    return {"dst": dst, "ciphertexts": blobs}


def collect(state: ConfigRecord, config: Mapping[str, Any], server_round: int) -> None:
    """Open the shares the neighbours sent; fix the set of peers this client masks with."""
    st: Any = state  # a ConfigRecord: its values are typed as any config value
    _expect(state, COLLECT, server_round)
    index, threshold = int(st["index"]), int(st["threshold"])
    peers = list(st["peers"])
    src = [int(j) for j in config.get("src", [])]
    blobs = list(config.get("ciphertexts", []))
    if len(set(src)) != len(src) or len(src) != len(blobs) or index in src or not set(src) <= set(peers):
        raise SecAggViolation(
            "SecAggViolation: the forwarded shares come from unknown or repeated senders."
        )
    if len(src) + 1 < threshold:
        raise SecAggViolation(
            f"SecAggViolation: too few shares: {len(src)} neighbour(s) sent theirs, but "
            f"{threshold - 1} are needed for the reconstruction threshold {threshold}."
        )
    held, held_seed, held_key = list(st["held"]), list(st["held-seed"]), list(st["held-key"])
    for j, blob in zip(src, blobs, strict=True):
        pk = st["peer-pk-c"][peers.index(j)]
        key = crypto.agree(bytes(st["sk-c"]), bytes(pk), SHARE_LABEL)
        try:
            plain = crypto.decrypt(key, bytes(blob), associated_data(server_round, j, index))
        except InvalidTag:
            raise SecAggViolation(
                f"SecAggViolation: the share sent by neighbour {j} does not decrypt; it was "
                "altered or misrouted."
            ) from None
        if int.from_bytes(plain[:4], "big") != j or int.from_bytes(plain[4:8], "big") != index:
            raise SecAggViolation(f"SecAggViolation: the share from {j} names other clients.")
        size = shamir.SHARE_BYTES
        held.append(j)
        held_seed.append(plain[8 : 8 + size])
        held_key.append(plain[8 + size : 8 + 2 * size])
    st.update(
        {"next": UNMASK, "held": held, "held-seed": held_seed, "held-key": held_key,
         "masked-with": src}
    )


def masked_vector(state: ConfigRecord, update: np.ndarray, weight: int) -> np.ndarray:
    """Return ``(w * q(update), w) + self mask ± pairwise masks  (mod M)``, as uint64."""
    st: Any = state
    c, q_range = float(st["clipping-range"]), int(st["quantization-range"])
    modulus, index = int(st["modulus-range"]), int(st["index"])
    if not 0 <= weight <= int(st["max-weight"]):
        raise SecAggViolation(f"SecAggViolation: weight {weight} is outside [0, max_weight].")
    q = quantize(update, c, q_range)
    vector = np.concatenate([q * np.uint64(weight), np.array([weight], dtype=np.uint64)])
    low = np.uint64(modulus - 1)
    vector = (vector + crypto.mask(bytes(st["seed"]), vector.size, modulus)) & low
    peers = list(st["peers"])
    for j in st["masked-with"]:
        if j == index:
            continue
        pk = bytes(st["peer-pk-s"][peers.index(j)])
        pairwise = crypto.mask(crypto.agree(bytes(st["sk-s"]), pk, MASK_LABEL), vector.size, modulus)
        vector = (vector + pairwise if index < j else vector + (np.uint64(modulus) - pairwise)) & low
    out: np.ndarray = vector
    return out


def unmask(state: ConfigRecord, config: Mapping[str, Any], server_round: int) -> dict[str, Any]:
    """Reveal self-mask seed shares of the alive and key shares of the dropped."""
    st: Any = state  # a ConfigRecord: its values are typed as any config value
    _expect(state, UNMASK, server_round)
    index, threshold = int(st["index"]), int(st["threshold"])
    alive = [int(j) for j in config.get("alive", [])]
    dropped = [int(j) for j in config.get("dropped", [])]
    both = sorted(set(alive) & set(dropped))
    if both:
        raise SecAggViolation(
            f"SecAggViolation: clients {both} are listed both alive and dropped; revealing "
            "both a mask seed share and a key share of one peer would expose its update."
        )
    revealed_seed = set(st.get("revealed-seed", []))
    revealed_key = set(st.get("revealed-key", []))
    twice = sorted((set(alive) & revealed_key) | (set(dropped) & revealed_seed))
    if twice:
        raise SecAggViolation(
            f"SecAggViolation: asked to reveal both a mask seed and a secret key of {twice}."
        )
    held = list(st["held"])
    masked_with = set(st["masked-with"]) | {index}
    if index not in alive or not set(alive) <= masked_with or not set(dropped) <= set(held):
        raise SecAggViolation(
            "SecAggViolation: the alive/dropped lists name clients this client holds no "
            "shares of, or leave out this client itself."
        )
    if len(alive) < threshold:
        raise SecAggViolation(
            f"SecAggViolation: only {len(alive)} surviving neighbour(s), fewer than the "
            f"threshold {threshold}; refusing to reveal shares."
        )
    # ``next`` stays "unmask": a repeated request is answered, held to the same choices.
    st["revealed-seed"] = sorted(revealed_seed | set(alive))
    st["revealed-key"] = sorted(revealed_key | set(dropped))
    return {
        "alive": alive,
        "seed-shares": [st["held-seed"][held.index(j)] for j in alive],
        "dropped": dropped,
        "key-shares": [st["held-key"][held.index(j)] for j in dropped],
    }

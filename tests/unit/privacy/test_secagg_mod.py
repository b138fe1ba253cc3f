"""secaggplus_mod refuses every protocol violation with its own clear error reply."""

from __future__ import annotations

from typing import Any

import pytest

from fedlab.context import Context
from fedlab.message import ErrorCode, Message
from fedlab.mods.secagg import SecAggPlusMod, secaggplus_mod
from fedlab.privacy.secagg.protocol import RECORD, STAGE
from fedlab.records import ConfigRecord, RecordDict

PARAMS = {"clipping-range": 1.0, "quantization-range": 2**10, "modulus-range": 2**32, "max-weight": 10}


def never(msg: Message, ctx: Context) -> Message:
    raise AssertionError("the training handler must not see protocol stages")


def send(ctx: Context, stage: str, **values: Any) -> Message:
    msg = Message(RecordDict({RECORD: ConfigRecord({STAGE: stage, **values})}), ctx.node_id, "train", group_id="1")
    return secaggplus_mod(msg, ctx, never)


def refused(reply: Message, match: str) -> None:
    assert reply.has_error() and reply.error is not None
    assert reply.error.code == ErrorCode.MOD_FAILED_PRECONDITION
    assert reply.error.reason.startswith("SecAggViolation")
    assert match in reply.error.reason, reply.error.reason


def three_clients(threshold: int = 2) -> tuple[list[Context], list[dict[str, Any]]]:
    """Three neighbours after setup: their contexts and their public keys."""
    contexts, keys = [], []
    for k in (1, 2, 3):
        ctx = Context(run_id=1, node_id=10 + k)
        reply = send(ctx, "setup", index=k, neighbours=[j for j in (1, 2, 3) if j != k], threshold=threshold, **PARAMS)
        assert not reply.has_error()
        contexts.append(ctx)
        keys.append(dict(reply.content[RECORD]))
    return contexts, keys


def peers_of(keys: list[dict[str, Any]]) -> dict[str, Any]:
    return {"peers": [1, 2, 3], "pk-c": [k["pk-c"] for k in keys], "pk-s": [k["pk-s"] for k in keys]}


def up_to_unmask() -> list[Context]:
    """Three clients that have shared keys and collected each other's shares."""
    contexts, keys = three_clients()
    sent = {}
    for k, ctx in enumerate(contexts, start=1):
        reply = send(ctx, "share-keys", **peers_of(keys))
        sent[k] = dict(reply.content[RECORD])
    for k, ctx in enumerate(contexts, start=1):
        src = [j for j in sent if k in sent[j]["dst"]]
        blobs = [sent[j]["ciphertexts"][list(sent[j]["dst"]).index(k)] for j in src]
        state = ctx.state[RECORD]
        from fedlab.privacy.secagg import client  # the collect step without training

        client.collect(state, {"src": src, "ciphertexts": blobs}, 1)  # type: ignore[arg-type]
    return contexts


def test_duplicate_public_keys_are_refused():
    contexts, keys = three_clients()
    peers = peers_of(keys)
    peers["pk-s"][2] = peers["pk-s"][1]  # the server gives two neighbours one key
    refused(send(contexts[0], "share-keys", **peers), "duplicate public keys")


def test_too_few_shares_at_key_sharing_are_refused():
    contexts, keys = three_clients(threshold=3)
    peers = {"peers": [1, 2], "pk-c": [keys[0]["pk-c"], keys[1]["pk-c"]], "pk-s": [keys[0]["pk-s"], keys[1]["pk-s"]]}
    refused(send(contexts[0], "share-keys", **peers), "too few shares")


def test_too_few_forwarded_shares_are_refused():
    contexts, keys = three_clients(threshold=3)
    assert not send(contexts[0], "share-keys", **peers_of(keys)).has_error()
    msg = Message(RecordDict({RECORD: ConfigRecord({STAGE: "collect", "src": [], "ciphertexts": []})}), 11, "train", group_id="1")
    refused(secaggplus_mod(msg, contexts[0], never), "too few shares")


def test_overlapping_alive_and_dropped_lists_are_refused():
    contexts = up_to_unmask()
    refused(send(contexts[0], "unmask", alive=[1, 2], dropped=[2, 3]), "both alive and dropped")


def test_revealing_both_a_mask_seed_and_a_secret_key_of_one_peer_is_refused():
    contexts = up_to_unmask()
    first = send(contexts[0], "unmask", alive=[1, 2, 3], dropped=[])
    assert not first.has_error()
    # A second request now calls client 3 dropped: its key share would unmask its vector.
    refused(send(contexts[0], "unmask", alive=[1, 2], dropped=[3]), "both a mask seed and a secret key")


def test_stages_out_of_order_are_refused_and_plain_training_passes_through():
    ctx = Context(run_id=1, node_id=5)
    refused(send(ctx, "unmask", alive=[1], dropped=[]), "before setup")
    plain = Message(RecordDict(), 5, "train", group_id="1")
    assert SecAggPlusMod()(plain, ctx, lambda m, c: m.reply(RecordDict())).has_content()


@pytest.mark.parametrize("neighbours", [[1, 2], [2, 2]])
def test_a_neighbour_list_with_the_client_itself_or_repeats_is_refused(neighbours):
    refused(send(Context(run_id=1, node_id=5), "setup", index=1, neighbours=neighbours, threshold=1, **PARAMS), "repeats")

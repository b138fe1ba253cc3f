"""A Message as a small header plus a content object, and back."""

from __future__ import annotations

import numpy as np
import pytest

from fedlab.deploy import proto as pb
from fedlab.deploy.transport.wire import decode_header, join_message, split_message, split_messages
from fedlab.errors import CodecError, TransferError
from fedlab.message import Error, ErrorCode, Message
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.wire.codec import encode_message


def train(arrays: ArrayRecord, dst: int, **config: object) -> Message:
    content = RecordDict({"arrays": arrays, "config": ConfigRecord(dict(config))})  # type: ignore[arg-type]
    return Message(content, dst, "train", group_id="2", run_id=5)


def test_a_message_comes_back_whole_and_its_arrays_bit_exact() -> None:
    arrays = ArrayRecord({"w": np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)})
    sent = train(arrays, 9, lr=0.1)
    wire, blob = split_message(sent)
    back = join_message(wire, blob)
    assert back.metadata == sent.metadata
    assert back.content["arrays"] == arrays and back.content["config"] == ConfigRecord({"lr": 0.1})


def test_an_error_reply_has_no_content_object() -> None:
    reply = train(ArrayRecord(), 9).reply(Error(ErrorCode.NODE_UNAVAILABLE, "gone"))
    wire, blob = split_message(reply)
    assert blob is None and not wire.HasField("content")
    assert join_message(wire, None).error == Error(ErrorCode.NODE_UNAVAILABLE, "gone")


def test_a_broadcast_is_encoded_once_and_different_contents_separately() -> None:
    shared = ArrayRecord({"w": np.ones(1000, np.float32)})
    messages = [train(shared, n, lr=0.1) for n in (1, 2, 3)] + [train(shared, 4, lr=0.2)]
    split = split_messages(messages)
    blobs = [blob for _, blob in split]
    assert blobs[0] is blobs[1] is blobs[2] and blobs[3] is not blobs[0]
    assert [w.content.digest for w, _ in split].count(split[0][0].content.digest) == 3
    assert [join_message(w, b).metadata.dst_node_id for w, b in split] == [1, 2, 3, 4]


def test_configs_that_differ_only_in_type_are_not_taken_for_the_same_content() -> None:
    shared = ArrayRecord({"w": np.ones(3)})
    split = split_messages([train(shared, 1, x=1), train(shared, 2, x=1.0), train(shared, 3, x=True)])
    assert len({w.content.digest for w, _ in split}) == 3


def test_a_header_carrying_content_inline_is_refused() -> None:
    inline = pb.WireMessage(frame=encode_message(train(ArrayRecord({"w": np.ones(2)}), 1)))
    with pytest.raises(CodecError, match="inline"):
        decode_header(inline)


def test_a_message_pointing_at_content_needs_that_content() -> None:
    wire, _ = split_message(Message(RecordDict({"m": MetricRecord({"a": 1})}), 1, "query"))
    with pytest.raises(TransferError, match="points at content"):
        join_message(wire, None)

"""Flower's records and messages built with Flower's signatures, and their round trips."""

from __future__ import annotations

import io

import numpy as np
import pytest

from fedlab.compat import flower
from fedlab.compat.flower.message import as_flower_message
from fedlab.message import Error
from fedlab.records import ArrayRecord as FedlabArrayRecord
from fedlab.records import RecordDict as FedlabRecordDict
from fedlab.wire import codec


@pytest.fixture(autouse=True)
def _hook() -> object:
    with flower.enabled():
        yield


def test_arrayrecord_forms_round_trip_bit_exactly() -> None:
    from flwr.app import Array, ArrayRecord

    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, -2], dtype=np.int64)]
    for record in (
        ArrayRecord(arrays),
        ArrayRecord(numpy_ndarrays=arrays),
        ArrayRecord.from_numpy_ndarrays(arrays),
    ):
        assert list(record) == ["0", "1"]
        back = record.to_numpy_ndarrays()
        assert all(
            b.dtype == a.dtype and b.tobytes() == a.tobytes()
            for a, b in zip(arrays, back, strict=True)
        )
        back[0][0, 0] = 99  # the caller's own copy
        assert record.to_numpy_ndarrays()[0][0, 0] == 0
    buffer = io.BytesIO()
    np.save(buffer, arrays[0])
    assert (
        Array("float32", [2, 3], "numpy.ndarray", buffer.getvalue()).numpy().tolist()
        == arrays[0].tolist()
    )
    assert ArrayRecord(array_dict={"w": Array(arrays[1])})["w"].numpy().tolist() == [1, -2]


def test_message_instruction_and_reply_forms() -> None:
    from flwr.app import Message, MessageType, MetricRecord, RecordDict

    ins = Message(content=RecordDict(), message_type=MessageType.QUERY, dst_node_id=4, group_id="2")
    same = Message(RecordDict(), 4, "query", group_id="2")
    assert (ins.metadata.dst_node_id, ins.metadata.message_type, ins.metadata.group_id) == (
        4,
        "query",
        "2",
    )
    assert same.metadata.message_type == "query"
    reply = Message(RecordDict({"m": MetricRecord({"n": 1})}), reply_to=ins)
    assert reply.metadata.reply_to_message_id == ins.metadata.message_id
    assert (reply.metadata.src_node_id, reply.metadata.dst_node_id) == (4, 0)
    failed = Message(Error(2, "boom"), reply_to=ins)
    assert failed.has_error() and failed.error == Error(2, "boom")


def test_a_message_decoded_from_the_wire_gets_flower_methods_back() -> None:
    from flwr.app import ArrayRecord, Message, RecordDict

    sent = Message(
        RecordDict({"arrays": ArrayRecord([np.ones(3, np.float32)])}),
        dst_node_id=1,
        message_type="train",
    )
    decoded = codec.decode_message(codec.encode_message(sent))
    assert type(decoded.content["arrays"]) is FedlabArrayRecord
    again = as_flower_message(decoded)
    assert again.content["arrays"].to_numpy_ndarrays()[0].tolist() == [1.0, 1.0, 1.0]
    assert isinstance(again.content, FedlabRecordDict)

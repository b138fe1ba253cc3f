"""Size Mods: their numbers are the codec's encoded sizes, and a limit refuses above it."""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np
import pytest

from fedlab import ClientApp, ConfigRecord, Context, Message, MetricRecord, RecordDict
from fedlab.errors import ConfigurationError
from fedlab.message import ErrorCode
from fedlab.mods import ArraysSizeMod, MessageSizeMod, arrays_size_mod, message_size_mod
from fedlab.records import ArrayRecord
from fedlab.wire.codec import encode_message


def instruction(n: int = 100, message_type: str = "train") -> Message:
    content = RecordDict(
        {
            "arrays": ArrayRecord({"w": np.ones((n, 2), np.float32), "b": np.zeros(3)}),
            "config": ConfigRecord({"lr": 0.1, "name": "x" * 40}),
        }
    )
    return Message(content, dst_node_id=4, message_type=message_type, group_id="2")


def app_with(mod: Callable) -> tuple[ClientApp, list[Message]]:
    app, replies = ClientApp(mods=[mod]), []

    def handler(msg: Message, ctx: Context) -> Message:
        replies.append(
            msg.reply(
                RecordDict(
                    {
                        "arrays": ArrayRecord([np.arange(7, dtype=np.int16)]),
                        "metrics": MetricRecord({"num-examples": 9}),
                    }
                )
            )
        )
        return replies[-1]

    app.train()(handler)
    app.query()(handler)
    return app, replies


def array_section(frame: bytes) -> int:
    """The bytes after the header of an encoded frame: the arrays."""
    _, header = struct.unpack_from("<4sI", frame)
    return len(frame) - 8 - header


@pytest.mark.parametrize("mod", [message_size_mod, MessageSizeMod()])
@pytest.mark.parametrize("message_type", ["train", "query"])
def test_message_sizes_are_the_encoded_sizes_of_instruction_and_reply(
    mod: Callable, message_type: str
) -> None:
    app, replies = app_with(mod)
    ins = instruction(message_type=message_type)
    metrics = app(ins, Context(0, 4)).content["metrics"]
    assert dict(metrics) == {
        "num-examples": 9,
        "message-bytes-in": len(encode_message(ins)),
        "message-bytes-out": len(encode_message(replies[0])),
    }


@pytest.mark.parametrize("mod", [arrays_size_mod, ArraysSizeMod()])
def test_array_sizes_are_the_array_section_of_the_encoded_frames(mod: Callable) -> None:
    app, replies = app_with(mod)
    ins = instruction(n=100)
    metrics = app(ins, Context(0, 4)).content["metrics"]
    assert metrics["arrays-bytes-in"] == array_section(encode_message(ins)) == 100 * 2 * 4 + 3 * 8
    assert metrics["arrays-bytes-out"] == array_section(encode_message(replies[0])) == 14
    assert (metrics["arrays-elements-in"], metrics["arrays-elements-out"]) == (203, 7)


@pytest.mark.parametrize("mod_class", [MessageSizeMod, ArraysSizeMod])
def test_an_instruction_above_the_limit_is_refused_naming_its_size_and_the_limit(
    mod_class: type,
) -> None:
    ins = instruction(n=1000)
    size = (
        len(encode_message(ins))
        if mod_class is MessageSizeMod
        else array_section(encode_message(ins))
    )
    app, replies = app_with(mod_class(limit=size - 1))
    reply = app(ins, Context(0, 4))
    assert replies == []  # the handler never ran
    assert reply.error is not None and reply.error.code == ErrorCode.MOD_FAILED_PRECONDITION
    assert f"are {size} bytes, above this client's limit of {size - 1} bytes" in reply.error.reason

    app, replies = app_with(mod_class(limit=size))  # at the limit: accepted
    assert app(ins, Context(0, 4)).has_content() and len(replies) == 1


@pytest.mark.parametrize("limit", [0, -5, 1.5, True, "1MB"])
def test_a_limit_that_is_not_a_positive_int_is_refused(limit: object) -> None:
    with pytest.raises(ConfigurationError, match="limit must be a positive number of bytes"):
        MessageSizeMod(limit=limit)  # type: ignore[arg-type]


def test_a_reply_whose_metrics_is_not_a_metric_record_becomes_an_error_that_says_why() -> None:
    app = ClientApp(mods=[arrays_size_mod])
    app.train()(lambda msg, ctx: msg.reply(RecordDict({"metrics": ConfigRecord({"a": "b"})})))
    reply = app(instruction(), Context(0, 4))
    assert (
        reply.error is not None
        and "'metrics' is a ConfigRecord, not a MetricRecord" in reply.error.reason
    )


def test_an_error_reply_passes_through_unmeasured() -> None:
    app = ClientApp(mods=[message_size_mod])

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        raise ValueError("no data")

    reply = app(instruction(), Context(0, 4))
    assert reply.error is not None and reply.error.reason.startswith("ValueError: no data")

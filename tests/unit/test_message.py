"""Message, Metadata, Error and message types."""

from __future__ import annotations

import dataclasses
import time

import pytest

from fedlab.errors import MessageError
from fedlab.message import (
    DEFAULT_TTL,
    Error,
    ErrorCode,
    Message,
    MessageType,
    Metadata,
    validate_message_type,
)
from fedlab.records import ConfigRecord, MetricRecord, RecordDict


def _instruction(**kwargs: object) -> Message:
    options: dict = {"group_id": "3", "run_id": 11, **kwargs}
    content = RecordDict({"config": ConfigRecord({"lr": 0.1})})
    return Message(
        content, dst_node_id=7, message_type=options.pop("message_type", "train"), **options
    )


def _reply_content() -> RecordDict:
    return RecordDict({"metrics": MetricRecord({"loss": 0.25})})


# --- message types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message_type",
    [
        "train",
        "evaluate",
        "query",
        "train.finetune",
        "evaluate.test_set",
        "query.get-stats",
        "query._x1",
    ],
)
def test_valid_message_types_are_returned_unchanged(message_type: str) -> None:
    assert validate_message_type(message_type) == message_type


def test_message_type_constants_are_valid_types() -> None:
    for message_type in (MessageType.TRAIN, MessageType.EVALUATE, MessageType.QUERY):
        assert validate_message_type(message_type) == message_type


@pytest.mark.parametrize(
    "message_type",
    [
        "fit",
        "train.",
        "train.a b",
        "",
        "Train",
        ".train",
        "train.a.b",
        "train.1st",
        "train.finetune\n",
        "fit.train",
    ],
)
def test_invalid_message_types_are_rejected_with_the_valid_forms(message_type: str) -> None:
    with pytest.raises(MessageError) as info:
        validate_message_type(message_type)

    message = str(info.value)
    assert repr(message_type) in message
    assert "'train', 'evaluate' or 'query'" in message and "train.finetune" in message


def test_a_message_type_that_is_not_a_str_is_rejected() -> None:
    with pytest.raises(MessageError, match="must be a str, got int"):
        validate_message_type(1)  # type: ignore[arg-type]


# --- building a message ---------------------------------------------------------------------


def test_a_new_message_goes_from_the_server_to_its_destination() -> None:
    before = time.time()

    msg = _instruction()

    md = msg.metadata
    assert (md.src_node_id, md.dst_node_id, md.run_id) == (0, 7, 11)
    assert (md.message_type, md.group_id, md.reply_to_message_id) == ("train", "3", "")
    assert md.ttl == DEFAULT_TTL
    assert before <= md.created_at <= time.time()
    assert msg.has_content() and not msg.has_error() and msg.error is None
    assert msg.content["config"] == ConfigRecord({"lr": 0.1})


def test_every_message_gets_its_own_id() -> None:
    ids = {_instruction().metadata.message_id for _ in range(50)}

    assert len(ids) == 50 and "" not in ids


def test_an_int_group_id_is_stored_as_str() -> None:
    assert _instruction(group_id=4).metadata.group_id == "4"


@pytest.mark.parametrize("content", [{"metrics": MetricRecord()}, MetricRecord(), None])
def test_content_that_is_not_a_record_dict_is_rejected(content: object) -> None:
    with pytest.raises(MessageError, match="content must be a RecordDict"):
        Message(content, dst_node_id=1, message_type="train")  # type: ignore[arg-type]


@pytest.mark.parametrize("dst", [True, "1", 1.0, None])
def test_a_destination_that_is_not_an_int_node_id_is_rejected(dst: object) -> None:
    with pytest.raises(MessageError, match="dst_node_id"):
        Message(RecordDict(), dst_node_id=dst, message_type="train")  # type: ignore[arg-type]


@pytest.mark.parametrize("ttl", [0, -1.0, float("nan")])
def test_a_ttl_that_is_not_positive_is_rejected(ttl: float) -> None:
    with pytest.raises(MessageError, match="ttl must be a positive"):
        Message(RecordDict(), dst_node_id=1, message_type="train", ttl=ttl)


def test_an_invalid_message_type_is_rejected_when_building() -> None:
    with pytest.raises(MessageError, match="'fit'"):
        Message(RecordDict(), dst_node_id=1, message_type="fit")


# --- replies --------------------------------------------------------------------------------


def test_reply_goes_back_to_the_sender_and_points_at_the_instruction() -> None:
    ins = _instruction(message_type="train.finetune")
    content = _reply_content()

    rep = ins.reply(content)

    md, imd = rep.metadata, ins.metadata
    assert (md.src_node_id, md.dst_node_id) == (imd.dst_node_id, imd.src_node_id)
    assert md.reply_to_message_id == imd.message_id
    assert md.message_id not in ("", imd.message_id)
    assert (md.message_type, md.group_id, md.run_id) == ("train.finetune", "3", 11)
    assert rep.content is content and not rep.has_error()


def test_reply_lives_at_most_as_long_as_the_instruction_has_left() -> None:
    ins = _instruction(ttl=10.0).with_metadata(created_at=time.time() - 8.0)

    rep = ins.reply(_reply_content())

    assert 0 < rep.metadata.ttl <= 2.0
    assert rep.metadata.ttl > 1.0
    assert rep.metadata.created_at + rep.metadata.ttl <= ins.metadata.created_at + 10.0 + 1e-6


def test_reply_to_an_expired_instruction_still_has_a_positive_ttl() -> None:
    ins = _instruction(ttl=1.0).with_metadata(created_at=time.time() - 60.0)

    assert 0 < ins.reply(_reply_content()).metadata.ttl < 1.0


def test_error_reply_carries_the_error_instead_of_content() -> None:
    error = Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, "ValueError: bad lr\nTraceback ...")

    rep = _instruction().reply(error)

    assert rep.has_error() and not rep.has_content()
    assert rep.error is error
    assert rep.metadata.reply_to_message_id != ""


def test_reading_content_of_an_error_reply_says_to_check_has_error() -> None:
    error = Error(
        ErrorCode.CLIENT_APP_RAISED_EXCEPTION,
        "ValueError: bad lr\nTraceback (most recent call last)",
    )
    rep = _instruction().reply(error)

    with pytest.raises(MessageError) as info:
        _ = rep.content

    message = str(info.value)
    assert "has_error()" in message
    assert f"code {int(ErrorCode.CLIENT_APP_RAISED_EXCEPTION)}" in message
    assert "ValueError: bad lr" in message and "Traceback" not in message


def test_reading_content_of_an_error_reply_without_reason_still_says_to_check_has_error() -> None:
    rep = _instruction().reply(Error(ErrorCode.TIMEOUT))

    with pytest.raises(MessageError, match=r"has_error\(\)"):
        _ = rep.content


@pytest.mark.parametrize(
    "content", [{"metrics": MetricRecord()}, MetricRecord({"loss": 0.1}), None, "ok"]
)
def test_reply_with_something_other_than_a_record_dict_or_error_shows_how_to_wrap_it(
    content: object,
) -> None:
    with pytest.raises(MessageError) as info:
        _instruction().reply(content)  # type: ignore[arg-type]

    assert type(content).__name__ in str(info.value)
    assert "msg.reply(RecordDict(" in str(info.value)


def test_repr_shows_type_route_group_and_body() -> None:
    ins = _instruction()

    assert repr(ins) == "Message(type='train', 0->7, group='3', content=['config'])"
    assert "error=Error(" in repr(ins.reply(Error(ErrorCode.TIMEOUT, "late")))


# --- parts and metadata ---------------------------------------------------------------------


def test_from_parts_needs_exactly_one_of_content_or_error() -> None:
    md = _instruction().metadata

    with pytest.raises(MessageError, match="exactly one of content or error"):
        Message.from_parts(md)
    with pytest.raises(MessageError, match="exactly one of content or error"):
        Message.from_parts(md, RecordDict(), Error(ErrorCode.UNKNOWN))

    assert Message.from_parts(md, error=Error(ErrorCode.UNKNOWN)).has_error()


def test_with_metadata_replaces_fields_and_shares_the_content() -> None:
    ins = _instruction()

    moved = ins.with_metadata(dst_node_id=9, run_id=2)

    assert (moved.metadata.dst_node_id, moved.metadata.run_id) == (9, 2)
    assert moved.metadata.message_id == ins.metadata.message_id
    assert moved.content is ins.content
    assert ins.metadata.dst_node_id == 7


def test_metadata_cannot_be_changed_in_place() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        _instruction().metadata.ttl = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("group_id", "expected"),
    [("3", 3), ("12", 12), ("0", 0), ("", 0), ("eval", 0), ("-1", 0), ("²", 0)],
)
def test_metadata_round_reads_the_group_id_as_a_round_number(group_id: str, expected: int) -> None:
    md = dataclasses.replace(_instruction().metadata, group_id=group_id)

    assert md.round == expected


def test_metadata_round_of_a_reply_is_the_instructions_round() -> None:
    assert _instruction(group_id="5").reply(_reply_content()).metadata.round == 5


def test_error_reason_defaults_to_empty() -> None:
    assert Error(ErrorCode.UNKNOWN).reason == ""


def test_metadata_is_a_value_compared_by_fields() -> None:
    md = _instruction().metadata

    assert md == Metadata(**dataclasses.asdict(md))


def test_a_message_to_a_negative_or_oversized_node_id_is_refused() -> None:
    for bad in (-5, 2**64, True, "3"):
        with pytest.raises(MessageError, match="grid.get_node_ids"):
            Message(RecordDict(), dst_node_id=bad, message_type="train")  # type: ignore[arg-type]


def test_with_content_keeps_the_message_id_so_the_reply_still_matches() -> None:
    msg = Message(RecordDict(), dst_node_id=3, message_type="train")
    swapped = msg.with_content(RecordDict({"metrics": MetricRecord({"x": 1})}))
    assert swapped.metadata == msg.metadata and list(swapped.content) == ["metrics"]
    assert swapped.reply(RecordDict()).metadata.reply_to_message_id == msg.metadata.message_id
    with pytest.raises(MessageError, match="RecordDict"):
        msg.with_content({"x": 1})  # type: ignore[arg-type]

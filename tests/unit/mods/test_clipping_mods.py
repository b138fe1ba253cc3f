"""Clipping Mods, tested as TensorFlow Privacy tests its queries: exact when no clipping is
needed, norm exactly C and direction unchanged when it is."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from fedlab import ClientApp, ConfigRecord, Context, Message, MetricRecord, RecordDict
from fedlab.message import ErrorCode
from fedlab.mods import (
    AdaptiveClippingMod,
    FixedClippingMod,
    adaptiveclipping_mod,
    fixedclipping_mod,
)
from fedlab.records import ArrayRecord

RECEIVED = [np.array([[1.0, -2.0], [0.5, 3.0]]), np.array([0.25, -1.0, 2.0])]
UPDATE = [np.array([[3.0, 0.0], [-1.0, 2.0]]), np.array([1.0, 4.0, -0.5])]
UPDATE_NORM = float(np.sqrt(sum((u**2).sum() for u in UPDATE)))


def instruction(
    clip: object = 1.0, message_type: str = "train", arrays: list | None = None
) -> Message:
    content = RecordDict({"arrays": ArrayRecord(arrays if arrays is not None else RECEIVED)})
    if clip is not None:
        content["config"] = ConfigRecord({"dp-clipping-norm": clip, "lr": 0.1})
    return Message(content, dst_node_id=3, message_type=message_type, group_id="1")


def app_returning(
    update: list[np.ndarray], mod: Callable, calls: list | None = None, metrics: dict | None = None
) -> tuple[ClientApp, list[Message]]:
    app, replies = ClientApp(mods=[mod]), []

    def handler(msg: Message, ctx: Context) -> Message:
        sent = msg.content["arrays"].to_numpy()  # type: ignore[union-attr]
        content = RecordDict({"arrays": ArrayRecord([s + u for s, u in zip(sent, update)])})
        if metrics is not None:
            content["metrics"] = MetricRecord(metrics)
        replies.append(msg.reply(content))
        return replies[-1]

    app.train()(handler)
    app.evaluate()(handler)
    return app, replies


def returned_update(reply: Message) -> list[np.ndarray]:
    back = reply.content["arrays"].to_numpy()  # type: ignore[union-attr]
    return [b - r for b, r in zip(back, RECEIVED)]


@pytest.mark.parametrize("mod", [fixedclipping_mod, FixedClippingMod()])
def test_an_update_within_the_norm_comes_back_exactly_as_the_handler_built_it(
    mod: Callable,
) -> None:
    app, replies = app_returning(UPDATE, mod)
    reply = app(instruction(clip=UPDATE_NORM * 1.01), Context(0, 3))
    assert reply is replies[0]


@pytest.mark.parametrize("mod", [fixedclipping_mod, adaptiveclipping_mod])
@pytest.mark.parametrize("clip", [0.5, 1.0, 2.5])
def test_a_clipped_update_has_norm_exactly_c_and_its_direction_unchanged(
    mod: Callable, clip: float
) -> None:
    app, _ = app_returning(UPDATE, mod)
    clipped = returned_update(app(instruction(clip=clip), Context(0, 3)))
    norm = float(np.sqrt(sum((c**2).sum() for c in clipped)))
    assert norm == pytest.approx(clip, rel=1e-12)
    for c, u in zip(clipped, UPDATE):
        np.testing.assert_allclose(c, u * (clip / UPDATE_NORM), rtol=1e-12, atol=1e-15)


def test_float32_arrays_are_clipped_to_c_within_float32_precision_and_stay_float32() -> None:
    received = [r.astype(np.float32) for r in RECEIVED]
    app, _ = app_returning([u.astype(np.float32) for u in UPDATE], fixedclipping_mod)
    reply = app(instruction(clip=1.0, arrays=received), Context(0, 3))
    back = reply.content["arrays"]
    assert [a.dtype for a in back.values()] == ["float32", "float32"]  # type: ignore[union-attr]
    update = [b.astype(np.float64) - r for b, r in zip(back.to_numpy(), received)]  # type: ignore[union-attr]
    assert float(np.sqrt(sum((u**2).sum() for u in update))) == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize(
    ("clip", "bit"), [(UPDATE_NORM * 2, 1), (UPDATE_NORM, 1), (UPDATE_NORM / 2, 0)]
)
def test_the_adaptive_mod_reports_1_when_the_unclipped_norm_is_at_most_c_else_0(
    clip: float, bit: int
) -> None:
    app, replies = app_returning(UPDATE, AdaptiveClippingMod(), metrics={"num-examples": 5})
    reply = app(instruction(clip=clip), Context(0, 3))
    assert dict(reply.content["metrics"]) == {"num-examples": 5, "dp-norm-bit": bit}
    if bit:  # nothing clipped: the handler's arrays travel untouched
        assert reply.content["arrays"] is replies[0].content["arrays"]


def test_the_adaptive_mod_adds_a_metric_record_when_the_handler_sent_none() -> None:
    app, _ = app_returning(UPDATE, adaptiveclipping_mod)
    assert dict(app(instruction(clip=0.1), Context(0, 3)).content["metrics"]) == {"dp-norm-bit": 0}


@pytest.mark.parametrize("clip", [None, 0.0, -1.0, float("nan"), "1.0", True])
def test_an_instruction_without_a_usable_clipping_norm_is_refused_before_training(
    clip: object,
) -> None:
    app, replies = app_returning(UPDATE, fixedclipping_mod)
    reply = app(instruction(clip=clip), Context(0, 3))
    assert replies == []
    assert reply.error is not None and reply.error.code == ErrorCode.MOD_FAILED_PRECONDITION
    assert "dp-clipping-norm" in reply.error.reason


def test_integer_arrays_are_refused_with_what_to_do() -> None:
    app, _ = app_returning([np.array([1, 2])], fixedclipping_mod)
    reply = app(instruction(arrays=[np.array([0, 0])]), Context(0, 3))
    assert reply.error is not None and reply.error.code == ErrorCode.MOD_FAILED_PRECONDITION
    assert "int64" in reply.error.reason and "convert them to float" in reply.error.reason


def test_a_reply_whose_arrays_changed_shape_is_refused_not_sent_unclipped() -> None:
    app = ClientApp(mods=[fixedclipping_mod])
    app.train()(lambda msg, ctx: msg.reply(RecordDict({"arrays": ArrayRecord([np.zeros(5)])})))
    reply = app(instruction(arrays=[np.zeros(4)]), Context(0, 3))
    assert reply.error is not None and "shape (5,), sent (4,)" in reply.error.reason


def test_evaluate_messages_and_error_replies_pass_through_untouched() -> None:
    app, replies = app_returning(UPDATE, fixedclipping_mod)
    assert app(instruction(clip=None, message_type="evaluate"), Context(0, 3)) is replies[0]

    failing = ClientApp(mods=[fixedclipping_mod])

    @failing.train()
    def train(msg: Message, ctx: Context) -> Message:
        raise RuntimeError("out of memory")

    reply = failing(instruction(), Context(0, 3))
    assert reply.error is not None and reply.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION


def test_a_custom_array_record_name_is_clipped_where_the_strategy_puts_it() -> None:
    mod = FixedClippingMod(arrayrecord_key="model")
    app = ClientApp(mods=[mod])
    app.train()(
        lambda msg, ctx: msg.reply(RecordDict({"model": ArrayRecord([np.array([3.0, 4.0])])}))
    )
    ins = Message(
        RecordDict(
            {"model": ArrayRecord([np.zeros(2)]), "config": ConfigRecord({"dp-clipping-norm": 1.0})}
        ),
        dst_node_id=3,
        message_type="train",
    )
    np.testing.assert_allclose(app(ins, Context(0, 3)).content["model"]["0"].numpy(), [0.6, 0.8])  # type: ignore[index]

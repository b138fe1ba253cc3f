"""compose(): how Mods wrap a handler."""

from __future__ import annotations

from fedlab.client import CallNext, Handler, Mod, compose
from fedlab.context import Context
from fedlab.message import Error, ErrorCode, Message
from fedlab.records import ConfigRecord, MetricRecord, RecordDict


def _message(lr: float = 0.1) -> Message:
    return Message(
        RecordDict({"config": ConfigRecord({"lr": lr})}), dst_node_id=5, message_type="train"
    )


def _context(node_id: int = 5) -> Context:
    return Context(run_id=1, node_id=node_id)


def _recording_handler(calls: list[str]) -> Handler:
    def handler(msg: Message, ctx: Context) -> Message:
        calls.append("handler")
        lr = msg.content["config"]["lr"]
        return msg.reply(RecordDict({"metrics": MetricRecord({"lr": lr, "node": ctx.node_id})}))

    return handler


def _tag(name: str, calls: list[str]) -> Mod:
    def mod(msg: Message, ctx: Context, call_next: CallNext) -> Message:
        calls.append(f"{name} in")
        reply = call_next(msg, ctx)
        calls.append(f"{name} out")
        return reply

    return mod


def test_compose_without_mods_calls_the_handler_directly() -> None:
    calls: list[str] = []
    handler = _recording_handler(calls)

    assert compose([], handler) is handler


def test_the_first_mod_is_the_outermost_and_each_mod_sees_the_reply_on_the_way_out() -> None:
    calls: list[str] = []
    wrapped = compose(
        [_tag("a", calls), _tag("b", calls), _tag("c", calls)], _recording_handler(calls)
    )

    wrapped(_message(), _context())

    assert calls == ["a in", "b in", "c in", "handler", "c out", "b out", "a out"]


def test_composing_calls_nothing_until_the_wrapped_handler_is_called() -> None:
    calls: list[str] = []

    compose([_tag("a", calls)], _recording_handler(calls))

    assert calls == []


def test_a_mod_can_pass_a_different_message_and_context_to_the_next_layer() -> None:
    def halve_lr_on_node_9(msg: Message, ctx: Context, call_next: CallNext) -> Message:
        changed = RecordDict({"config": ConfigRecord({"lr": msg.content["config"]["lr"] / 2})})
        return call_next(Message.from_parts(msg.metadata, content=changed), _context(node_id=9))

    wrapped = compose([halve_lr_on_node_9], _recording_handler([]))

    reply = wrapped(_message(lr=0.5), _context(node_id=5))

    assert reply.content["metrics"] == {"lr": 0.5 / 2, "node": 9}


def test_a_mod_that_does_not_call_next_answers_alone() -> None:
    calls: list[str] = []

    def refuse(msg: Message, ctx: Context, call_next: CallNext) -> Message:
        calls.append("refuse")
        return msg.reply(Error(ErrorCode.MOD_FAILED_PRECONDITION, "no budget left"))

    wrapped = compose(
        [_tag("outer", calls), refuse, _tag("inner", calls)], _recording_handler(calls)
    )

    reply = wrapped(_message(), _context())

    assert calls == ["outer in", "refuse", "outer out"]
    assert reply.error == Error(ErrorCode.MOD_FAILED_PRECONDITION, "no budget left")


def test_a_mod_may_call_next_more_than_once() -> None:
    calls: list[str] = []

    def twice(msg: Message, ctx: Context, call_next: CallNext) -> Message:
        call_next(msg, ctx)
        return call_next(msg, ctx)

    wrapped = compose([twice, _tag("inner", calls)], _recording_handler(calls))

    wrapped(_message(), _context())

    assert calls == ["inner in", "handler", "inner out"] * 2

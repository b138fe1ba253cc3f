"""ClientApp: routing by message type, error replies, Mods and the lifespan function."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

from fedlab.client import CallNext, ClientApp, Mod
from fedlab.context import Context
from fedlab.errors import ClientAppError, MessageError
from fedlab.message import Error, ErrorCode, Message
from fedlab.records import ConfigRecord, MetricRecord, RecordDict


def _message(message_type: str = "train", lr: float = 0.1) -> Message:
    content = RecordDict({"config": ConfigRecord({"lr": lr})})
    return Message(content, dst_node_id=7, message_type=message_type, group_id="4", run_id=2)


def _context() -> Context:
    return Context(run_id=2, node_id=7)


def _answer(msg: Message, **metrics: float) -> Message:
    return msg.reply(RecordDict({"metrics": MetricRecord(metrics)}))


def _tag(name: str, calls: list[str]) -> Mod:
    def mod(msg: Message, ctx: Context, call_next: CallNext) -> Message:
        calls.append(f"{name} in")
        reply = call_next(msg, ctx)
        calls.append(f"{name} out")
        return reply

    return mod


# --- routing ---------------------------------------------------------------------------------


def test_each_message_type_reaches_the_handler_registered_for_it() -> None:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        return _answer(msg, handler=1)

    @app.evaluate()
    def evaluate(msg: Message, ctx: Context) -> Message:
        return _answer(msg, handler=2)

    @app.query()
    def query(msg: Message, ctx: Context) -> Message:
        return _answer(msg, handler=3)

    for message_type, expected in (("train", 1), ("evaluate", 2), ("query", 3)):
        message = _message(message_type)
        reply = app(message, _context())
        assert reply.content["metrics"]["handler"] == expected
        assert reply.metadata.reply_to_message_id == message.metadata.message_id
        assert reply.metadata.message_type == message_type
    assert app.message_types == ["train", "evaluate", "query"]


def test_a_named_action_has_its_own_handler_beside_the_default_one() -> None:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        return _answer(msg, handler=1)

    @app.train("finetune")
    def finetune(msg: Message, ctx: Context) -> Message:
        return _answer(msg, handler=2)

    assert app(_message("train"), _context()).content["metrics"]["handler"] == 1
    assert app(_message("train.finetune"), _context()).content["metrics"]["handler"] == 2
    assert app.message_types == ["train", "train.finetune"]


def test_the_decorator_returns_the_function_unchanged() -> None:
    app = ClientApp()

    def train(msg: Message, ctx: Context) -> Message:
        return _answer(msg)

    assert app.train()(train) is train


def test_registering_a_second_handler_for_a_type_raises_naming_the_first() -> None:
    app = ClientApp()

    @app.train("finetune")
    def first(msg: Message, ctx: Context) -> Message:
        return _answer(msg)

    with pytest.raises(ClientAppError, match=r"'train\.finetune' is already registered \(first\)"):

        @app.train("finetune")
        def second(msg: Message, ctx: Context) -> Message:
            return _answer(msg)


def test_registering_a_second_handler_raises_even_when_the_first_has_no_name() -> None:
    app = ClientApp()

    def handler(msg: Message, ctx: Context, tag: int) -> Message:
        return _answer(msg, tag=tag)

    app.evaluate()(functools.partial(handler, tag=1))

    with pytest.raises(ClientAppError, match="'evaluate' is already registered"):
        app.evaluate()(functools.partial(handler, tag=2))


def test_an_action_that_is_not_an_identifier_is_refused_at_registration() -> None:
    app = ClientApp()

    with pytest.raises(MessageError, match=r"'train\.fine tune' is not valid"):
        app.train("fine tune")


def test_decorating_something_that_is_not_callable_is_refused() -> None:
    app = ClientApp()

    with pytest.raises(ClientAppError, match=r"@app\.query\(\) must decorate a function, got 3"):
        app.query()(3)  # type: ignore[arg-type]


def test_using_the_decorator_without_parentheses_says_to_add_them() -> None:
    app = ClientApp()

    def train(msg: Message, ctx: Context) -> Message:
        return _answer(msg)

    with pytest.raises(ClientAppError, match=r"write @app\.train\(\) with parentheses"):
        app.train(train)  # type: ignore[arg-type]


# --- error replies ---------------------------------------------------------------------------


def test_an_exception_in_a_handler_becomes_an_error_reply_with_the_traceback() -> None:
    app = ClientApp()

    @app.train()
    def train_on_missing_data(msg: Message, ctx: Context) -> Message:
        raise ValueError("partition 3 is empty")

    message = _message()
    reply = app(message, _context())

    assert reply.error is not None
    assert reply.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    lines = reply.error.reason.splitlines()
    assert lines[0] == "ValueError: partition 3 is empty"
    assert lines[1] == "Traceback (most recent call last):"
    assert "in train_on_missing_data" in reply.error.reason
    assert lines[-1] == "ValueError: partition 3 is empty"
    assert reply.metadata.reply_to_message_id == message.metadata.message_id
    assert (reply.metadata.src_node_id, reply.metadata.dst_node_id) == (7, 0)


def test_an_exception_in_a_mod_becomes_an_error_reply() -> None:
    def broken_mod(msg: Message, ctx: Context, call_next: CallNext) -> Message:
        raise ValueError("clip norm must be positive")

    app = ClientApp(mods=[broken_mod])

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        return _answer(msg)

    reply = app(_message(), _context())

    assert reply.error is not None
    assert reply.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    assert reply.error.reason.splitlines()[0] == "ValueError: clip norm must be positive"
    assert "in broken_mod" in reply.error.reason


def test_an_exception_in_the_lifespan_setup_becomes_an_error_reply_and_skips_the_handler() -> None:
    calls: list[str] = []
    app = ClientApp()

    @app.lifespan()
    def lifespan(ctx: Context) -> Iterator[None]:
        raise ValueError("GPU not found")
        yield

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        calls.append("handler")
        return _answer(msg)

    reply = app(_message(), _context())

    assert reply.error is not None
    assert reply.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    assert reply.error.reason.splitlines()[0] == "ValueError: GPU not found"
    assert "in lifespan" in reply.error.reason
    assert calls == []


def test_an_unknown_message_type_gets_an_error_listing_the_registered_handlers() -> None:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        return _answer(msg)

    @app.train("finetune")
    def finetune(msg: Message, ctx: Context) -> Message:
        return _answer(msg)

    message = _message("evaluate")
    reply = app(message, _context())

    assert reply.error == Error(
        ErrorCode.UNKNOWN_MESSAGE_TYPE,
        "This ClientApp has no handler for 'evaluate' (registered: 'train', 'train.finetune'). "
        "Register one with @app.evaluate().",
    )
    assert reply.metadata.reply_to_message_id == message.metadata.message_id


def test_an_unknown_named_action_is_told_to_register_that_action() -> None:
    app = ClientApp()

    reply = app(_message("query.stats"), _context())

    assert reply.error is not None
    assert reply.error.code == ErrorCode.UNKNOWN_MESSAGE_TYPE
    assert "(registered: none)" in reply.error.reason
    assert reply.error.reason.endswith("Register one with @app.query('stats').")


@pytest.mark.parametrize(
    ("returned", "named"),
    [(RecordDict(), "RecordDict"), (None, "NoneType"), ({"loss": 0.1}, "dict")],
)
def test_a_handler_returning_something_other_than_a_reply_gets_an_invalid_reply_error(
    returned: object, named: str
) -> None:
    app = ClientApp()

    @app.evaluate()
    def evaluate(msg: Message, ctx: Context) -> object:
        return returned

    reply = app(_message("evaluate"), _context())

    assert reply.error == Error(
        ErrorCode.INVALID_REPLY,
        f"The 'evaluate' handler returned {named}; "
        "return msg.reply(RecordDict({...})) built from the message it received.",
    )


def test_a_handler_returning_the_reply_to_another_message_gets_an_invalid_reply_error() -> None:
    app = ClientApp()
    other = _message()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        return _answer(other)

    reply = app(_message(), _context())

    assert reply.error is not None
    assert reply.error.code == ErrorCode.INVALID_REPLY
    assert "returned a Message that is not its reply" in reply.error.reason


def test_a_handler_returning_its_own_instruction_gets_an_invalid_reply_error() -> None:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        return msg

    reply = app(_message(), _context())

    assert reply.error is not None
    assert reply.error.code == ErrorCode.INVALID_REPLY


def test_an_error_reply_built_by_the_handler_is_passed_through() -> None:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        return msg.reply(Error(ErrorCode.MOD_FAILED_PRECONDITION, "budget spent"))

    reply = app(_message(), _context())

    assert reply.error == Error(ErrorCode.MOD_FAILED_PRECONDITION, "budget spent")


# --- mods ------------------------------------------------------------------------------------


def test_app_mods_wrap_handler_mods_which_wrap_the_handler() -> None:
    calls: list[str] = []
    app = ClientApp(mods=[_tag("app 1", calls), _tag("app 2", calls)])

    @app.train(mods=[_tag("train 1", calls), _tag("train 2", calls)])
    def train(msg: Message, ctx: Context) -> Message:
        calls.append("handler")
        return _answer(msg)

    app(_message(), _context())

    assert calls == [
        "app 1 in",
        "app 2 in",
        "train 1 in",
        "train 2 in",
        "handler",
        "train 2 out",
        "train 1 out",
        "app 2 out",
        "app 1 out",
    ]


def test_handler_mods_apply_only_to_their_own_handler() -> None:
    calls: list[str] = []
    app = ClientApp(mods=[_tag("app", calls)])

    @app.train(mods=[_tag("train only", calls)])
    def train(msg: Message, ctx: Context) -> Message:
        return _answer(msg)

    @app.evaluate()
    def evaluate(msg: Message, ctx: Context) -> Message:
        calls.append("evaluate")
        return _answer(msg)

    app(_message("evaluate"), _context())

    assert calls == ["app in", "evaluate", "app out"]


def test_a_mod_can_change_the_message_on_the_way_in_and_the_reply_on_the_way_out() -> None:
    def scale_lr_then_report_it(msg: Message, ctx: Context, call_next: CallNext) -> Message:
        content = RecordDict({"config": ConfigRecord({"lr": msg.content["config"]["lr"] * 10})})
        reply = call_next(Message.from_parts(msg.metadata, content=content), ctx)
        reply.content["metrics"]["loss"] = reply.content["metrics"]["loss"] / 4
        return reply

    app = ClientApp(mods=[scale_lr_then_report_it])

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        return _answer(msg, lr_seen=msg.content["config"]["lr"], loss=3.0)

    reply = app(_message(lr=0.25), _context())

    assert reply.content["metrics"] == {"lr_seen": 0.25 * 10, "loss": 3.0 / 4}


def test_a_mod_can_answer_without_calling_the_handler() -> None:
    calls: list[str] = []

    def refuse(msg: Message, ctx: Context, call_next: CallNext) -> Message:
        return msg.reply(Error(ErrorCode.MOD_FAILED_PRECONDITION, "message too large"))

    app = ClientApp(mods=[_tag("app", calls)])

    @app.train(mods=[refuse, _tag("inner", calls)])
    def train(msg: Message, ctx: Context) -> Message:
        calls.append("handler")
        return _answer(msg)

    reply = app(_message(), _context())

    assert reply.error == Error(ErrorCode.MOD_FAILED_PRECONDITION, "message too large")
    assert calls == ["app in", "app out"]


def test_a_mod_returning_something_other_than_a_reply_gets_an_invalid_reply_error() -> None:
    def forgetful(msg: Message, ctx: Context, call_next: CallNext) -> Message:
        call_next(msg, ctx)
        return None  # type: ignore[return-value]

    app = ClientApp(mods=[forgetful])

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        return _answer(msg)

    reply = app(_message(), _context())

    assert reply.error is not None
    assert reply.error.code == ErrorCode.INVALID_REPLY


# --- lifespan --------------------------------------------------------------------------------


def test_the_lifespan_sets_up_before_and_tears_down_after_every_call() -> None:
    calls: list[str] = []
    app = ClientApp(mods=[_tag("mod", calls)])

    @app.lifespan()
    def lifespan(ctx: Context) -> Iterator[None]:
        calls.append(f"setup {ctx.node_id}")
        yield
        calls.append(f"teardown {ctx.node_id}")

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        calls.append("handler")
        return _answer(msg)

    app(_message(), _context())
    app(_message(), _context())

    assert calls == ["setup 7", "mod in", "handler", "mod out", "teardown 7"] * 2


def test_the_lifespan_tears_down_when_the_handler_raises() -> None:
    calls: list[str] = []
    app = ClientApp()

    @app.lifespan()
    def lifespan(ctx: Context) -> Iterator[None]:
        calls.append("setup")
        yield
        calls.append("teardown")

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        calls.append("handler")
        raise ValueError("diverged")

    reply = app(_message(), _context())

    assert calls == ["setup", "handler", "teardown"]
    assert reply.error is not None
    assert reply.error.reason.splitlines()[0] == "ValueError: diverged"


def test_the_lifespan_does_not_run_for_an_unknown_message_type() -> None:
    calls: list[str] = []
    app = ClientApp()

    @app.lifespan()
    def lifespan(ctx: Context) -> Iterator[None]:
        calls.append("setup")
        yield

    reply = app(_message("query"), _context())

    assert calls == []
    assert reply.error is not None
    assert reply.error.code == ErrorCode.UNKNOWN_MESSAGE_TYPE


def test_an_exception_in_the_lifespan_teardown_becomes_an_error_reply() -> None:
    app = ClientApp()

    @app.lifespan()
    def lifespan(ctx: Context) -> Iterator[None]:
        yield
        raise OSError("could not release the GPU")

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        return _answer(msg)

    reply = app(_message(), _context())

    assert reply.error is not None
    assert reply.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    assert reply.error.reason.splitlines()[0] == "OSError: could not release the GPU"


@pytest.mark.parametrize("yields", [0, 2])
def test_a_lifespan_that_does_not_yield_exactly_once_is_reported(yields: int) -> None:
    app = ClientApp()

    @app.lifespan()
    def lifespan(ctx: Context) -> Iterator[None]:
        for _ in range(yields):
            yield

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        return _answer(msg)

    reply = app(_message(), _context())

    assert reply.error is not None
    assert reply.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    assert reply.error.reason.splitlines()[0] == (
        "ClientAppError: The lifespan function 'lifespan' must yield exactly once "
        "(set-up, yield, tear-down)."
    )


def test_registering_a_second_lifespan_raises() -> None:
    app = ClientApp()

    @app.lifespan()
    def first(ctx: Context) -> Iterator[None]:
        yield

    with pytest.raises(ClientAppError, match="already has a lifespan function"):

        @app.lifespan()
        def second(ctx: Context) -> Iterator[None]:
            yield

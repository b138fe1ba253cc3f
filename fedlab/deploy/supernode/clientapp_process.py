"""The process a SuperNode starts for one run: ``python -m fedlab.deploy.supernode.clientapp_process``.

It reads the frames :mod:`fedlab.deploy.supernode.runner` describes on stdin and answers
on the stdout it was started with; the ClientApp's own prints go to stderr, so they cannot
corrupt the pipe. It takes the working directory (which ``-m`` put first) off its import
path, and the bundle's modules are found only after the standard library and
site-packages (see :mod:`fedlab.deploy.bundle`).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import IO

from fedlab.context import Context
from fedlab.deploy.supernode.runner import read_frame, write_frame
from fedlab.message import Error, ErrorCode, Message
from fedlab.records import ConfigRecord
from fedlab.wire.codec import (
    decode_message,
    decode_record_dict,
    encode_message,
    encode_record_dict,
    message_parts,
)

__all__ = ["main"]


def _limit(cpu_seconds: float, memory_mb: int) -> None:
    import resource

    if cpu_seconds > 0:
        seconds = max(1, int(cpu_seconds + 0.999))
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 5))
    if memory_mb > 0:
        size = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size, size))


def _setting(frame: bytes, name: str) -> ConfigRecord:
    record = decode_record_dict(frame)[name]
    if not isinstance(record, ConfigRecord):
        raise EOFError(f"the {name} frame holds no ConfigRecord")
    return record


def _serve(inbox: IO[bytes], outbox: IO[bytes]) -> int:
    tag, frame = read_frame(inbox)
    if tag != b"B":
        return 2
    setup = _setting(frame, "setup")
    _limit(float(setup["cpu_seconds"]), int(setup["memory_mb"]))  # type: ignore[arg-type]
    try:
        from fedlab.deploy.bundle import load_bundle

        bundle = load_bundle(bytes(setup["bundle"]))  # type: ignore[arg-type]
        bundle.extract(str(setup["directory"]))
        app = bundle.client_app()
        defaults = bundle.run_config
    except BaseException as exc:  # reported on the first instruction; the node retries later
        for _ in range(3):
            read_frame(inbox)
        reason = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        write_frame(outbox, b"E", f"The run's ClientApp could not be loaded: {reason}".encode())
        return 1
    del setup, frame
    while True:
        try:
            _, context_frame = read_frame(inbox)
            _, message_frame = read_frame(inbox)
            _, state_frame = read_frame(inbox)
        except EOFError:
            return 0  # the node closed the pipe: the run is over
        given = _setting(context_frame, "context")
        context = Context(
            run_id=int(given["run_id"]),  # type: ignore[arg-type]
            node_id=int(given["node_id"]),  # type: ignore[arg-type]
            node_config=json.loads(str(given["node_config"])),
            run_config={**defaults, **json.loads(str(given["run_config"]))},
            state=decode_record_dict(state_frame),
        )
        message = decode_message(message_frame)
        leave = False
        try:
            reply = app(message, context)
        except BaseException as exc:  # sys.exit, KeyboardInterrupt: reply, then leave
            reply = message.reply(Error(ErrorCode.CLIENT_APP_CRASHED, _ended(exc)))
            leave = True
        write_frame(outbox, b"M", _encoded(message, reply))
        write_frame(outbox, b"S", encode_record_dict(context.state))
        if leave:
            return 1


def _ended(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return (
            f"The ClientApp called sys.exit({exc.code!r}) while handling this instruction; "
            "return an error reply instead. The next instruction starts a fresh process."
        )
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f"The ClientApp process stopped with {type(exc).__name__}: {exc}\n{text}"


def _encoded(message: Message, reply: Message) -> list[bytes | memoryview]:
    try:  # the parts, written to the pipe as they are (the reply's arrays not copied first)
        return message_parts(reply)
    except Exception as exc:  # a reply that cannot travel is that instruction's error
        why = f"The ClientApp's reply cannot be encoded ({type(exc).__name__}: {exc})."
        return [encode_message(message.reply(Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, why)))]


def main() -> int:
    """Serve one run's instructions on stdin/stdout; return the exit status."""
    if not getattr(sys.flags, "safe_path", False) and sys.path and sys.path[0] == os.getcwd():
        del sys.path[0]  # what -m put there: the node's working directory
    inbox = os.fdopen(os.dup(0), "rb")
    outbox = os.fdopen(os.dup(1), "wb")
    # The app's own output must not reach the pipe, nor may it read the node's commands.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        return _serve(inbox, outbox)
    except (EOFError, BrokenPipeError):
        return 0


if __name__ == "__main__":
    sys.exit(main())

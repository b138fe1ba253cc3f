"""Each run's ClientApp in a short-lived process of its own, spoken to over a pipe.

A SuperNode never imports a run's bundle itself. The first instruction of a run starts
``python -m fedlab.deploy.supernode.clientapp_process``, which takes the node's working
directory off its import path, extracts the bundle into a private directory, finds its
modules *after* the standard library and site-packages
(a bundled ``json.py`` cannot shadow anything), optionally limits its own CPU time and
memory (``resource.setrlimit``), and then answers instructions until the run ends, it
idles too long, or the node stops.

The pipe carries frames of fedlab's message codec, never pickle: one tag byte, an
8-byte little-endian length, and the payload. The node sends a setup frame once (``B``:
the bundle and the limits), then per instruction a context frame (``C``), the message
(``M``, :func:`~fedlab.wire.codec.encode_message`) and the node's state for the run
(``S``, a RecordDict); the process answers with the reply (``M``) and the new state
(``S``). The state lives in the node, so a crash loses no more than one instruction.
A crash, ``os._exit``, ``sys.exit`` or a limit hit becomes that instruction's error reply,
and the next instruction gets a fresh process.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from fedlab.context import Context
from fedlab.deploy.supernode import _forks
from fedlab.deploy.supernode._forks import WarmProcess
from fedlab.errors import CodecError
from fedlab.message import Error, ErrorCode, Message
from fedlab.records import ConfigRecord, RecordDict
from fedlab.wire.codec import decode_message, decode_record_dict, encode_record_dict, message_parts

__all__ = ["RunProcess", "prefork", "read_frame", "write_frame"]

_log = logging.getLogger("fedlab.supernode")
_HEAD = struct.Struct("<cQ")
#: The largest frame either side accepts: a bundle (64 MB) or a model.
MAX_FRAME = 64 * 1024**3
_PIECE = 1 << 20


def write_frame(
    stream: IO[bytes], tag: bytes, payload: bytes | Sequence[bytes | memoryview]
) -> None:
    """Write one frame (``tag`` is one byte) and flush it.

    ``payload`` may be the frame's buffers in order (``message_parts``): each goes to the
    pipe as it is, so a model is not first joined into one more copy of itself.
    """
    parts = [payload] if isinstance(payload, (bytes, bytearray, memoryview)) else payload
    views = [memoryview(part).cast("B") for part in parts]
    stream.write(_HEAD.pack(tag, sum(view.nbytes for view in views)))
    for view in views:
        stream.write(view)
    stream.flush()


def read_frame(stream: IO[bytes]) -> tuple[bytes, bytes]:
    """Read one frame; raise EOFError if the other side closed the pipe.

    The payload is read in pieces, so a length the other side lies about costs no more
    memory than the bytes it really sends; the pieces are joined once at the end.
    """
    head = stream.read(_HEAD.size)
    if len(head) < _HEAD.size:
        raise EOFError("the pipe closed")
    tag, size = _HEAD.unpack(head)
    if size > MAX_FRAME:
        raise EOFError(f"a frame of {size} bytes is above the limit")
    pieces: list[bytes] = []
    received = 0
    while received < size:
        piece = stream.read(min(size - received, _PIECE))
        if not piece:
            raise EOFError("the pipe closed mid-frame")
        pieces.append(piece)
        received += len(piece)
    return tag, pieces[0] if len(pieces) == 1 else b"".join(pieces)


class RunProcess:
    """The process that runs one run's ClientApp on this node (started when first called).

    Parameters
    ----------
    run_id
        The run.
    bundle
        The run's bundle bytes, already checked by the node (signature and run binding).
    cpu_seconds, memory_mb
        Limits of the process (CPU time over its life, address space); None for none.
    """

    def __init__(
        self,
        run_id: int,
        bundle: bytes,
        *,
        cpu_seconds: float | None = None,
        memory_mb: int | None = None,
    ) -> None:
        self.run_id = run_id
        self.bundle = bundle
        self.cpu_seconds = cpu_seconds
        self.memory_mb = memory_mb
        self.last_used = time.monotonic()
        self.busy = False
        self._process: subprocess.Popen[bytes] | WarmProcess | None = None
        self._directory: Path | None = None
        self._lock = threading.Lock()

    def __call__(self, message: Message, context: Context) -> Message:
        """Run ``message`` in the run's process; a crash there becomes an error reply."""
        with self._lock:
            self.busy = True
            try:
                reply, state = self._exchange(message, context)
            except (EOFError, OSError, CodecError) as err:  # a dead or garbled process
                reply = message.reply(Error(ErrorCode.CLIENT_APP_CRASHED, self._crash_reason(err)))
                state = None
            finally:
                self.busy = False
            if state is not None:
                context.state.clear()
                context.state.update(state)
            self.last_used = time.monotonic()
            return reply

    def alive(self) -> bool:
        """True while the run's process is running."""
        return self._process is not None and self._process.poll() is None

    def close(self) -> None:
        """End the process (if any) and remove its directory; a later call starts anew."""
        with self._lock:
            self._end()

    def _exchange(self, message: Message, context: Context) -> tuple[Message, RecordDict | None]:
        process = self._ensure()
        assert process.stdin is not None and process.stdout is not None
        setting = ConfigRecord({
            "run_id": context.run_id, "node_id": context.node_id,
            "node_config": json.dumps(dict(context.node_config)),
            "run_config": json.dumps(dict(context.run_config)),
        })  # fmt: skip
        write_frame(process.stdin, b"C", encode_record_dict(RecordDict({"context": setting})))
        write_frame(process.stdin, b"M", message_parts(message))
        write_frame(process.stdin, b"S", encode_record_dict(context.state))
        tag, payload = read_frame(process.stdout)
        if tag == b"E":  # the app could not be loaded; the process exits
            self._end()
            return message.reply(
                Error(ErrorCode.CLIENT_APP_CRASHED, payload.decode(errors="replace"))
            ), None
        reply = decode_message(payload)
        tag, payload = read_frame(process.stdout)
        state = decode_record_dict(payload)
        if reply.metadata.reply_to_message_id != message.metadata.message_id:
            self._end()
            raise EOFError("the ClientApp process answered with a reply to another message")
        if (
            reply.has_error()
            and reply.error is not None
            and reply.error.code == ErrorCode.CLIENT_APP_CRASHED
        ):
            self._end()  # it asked to exit (sys.exit): the next instruction gets a fresh one
        return reply, state

    def _ensure(self) -> subprocess.Popen[bytes] | WarmProcess:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._end()
        self._directory = Path(tempfile.mkdtemp(prefix=f"fedlab-run-{self.run_id}-"))
        pythonpath = os.pathsep.join(_fedlab_path())
        server = _forks.current()
        process: subprocess.Popen[bytes] | WarmProcess | None = None
        if server is not None:  # a warm fork (see prefork); a cold start if it is gone
            process = server.spawn(pythonpath)
        if process is None:
            process = subprocess.Popen(
                [sys.executable, "-m", "fedlab.deploy.supernode.clientapp_process"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=dict(os.environ, PYTHONPATH=pythonpath),
            )
        self._process = process
        assert process.stdin is not None
        limits = ConfigRecord({
            "bundle": self.bundle, "directory": str(self._directory),
            "cpu_seconds": float(self.cpu_seconds or 0.0), "memory_mb": int(self.memory_mb or 0),
        })  # fmt: skip
        write_frame(process.stdin, b"B", encode_record_dict(RecordDict({"setup": limits})))
        _log.info("Run %d: started its ClientApp process (pid %d)", self.run_id, process.pid)
        return process

    def _crash_reason(self, err: BaseException) -> str:
        process = self._process
        code = None
        if process is not None:
            try:
                code = process.wait(10.0)
            except subprocess.TimeoutExpired:
                pass
        self._end()
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            why = {
                "SIGXCPU": f" (it used up its CPU-time limit of {self.cpu_seconds} s)",
                "SIGKILL": " (killed, often for using too much memory)",
            }.get(name, "")
            how = f"was killed by {name}{why}"
        elif code is not None:
            how = f"exited with code {code} (did the ClientApp call os._exit or sys.exit?)"
        else:
            how = f"stopped answering ({err})"
        return (
            f"The ClientApp process of run {self.run_id} {how} while handling this "
            "instruction; the next instruction starts a fresh process."
        )

    def _end(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            for stream in (process.stdin, process.stdout):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(5.0)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None


def prefork(serve: Callable[[], int]) -> None:
    """Start ClientApp processes by forking this warm process, not as fresh interpreters.

    ``serve`` is :func:`fedlab.deploy.supernode.clientapp_process.main` (passed in, as
    that module imports this one).

    Call it in a SuperNode process before it creates any gRPC object or thread (the
    local cluster's template does, :mod:`fedlab.deploy.local`); it does nothing elsewhere
    than on Linux, or once threads run. Each run's process is still a process of its own,
    a child of the node, fed the same frames (:mod:`fedlab.deploy.supernode._forks`).
    """
    _forks.start(serve)


def _fedlab_path() -> list[str]:
    # The child drops the working directory from its path: it finds fedlab where this
    # process found it, then whatever PYTHONPATH already said.
    import fedlab

    home = str(Path(fedlab.__file__).resolve().parent.parent)
    existing = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return [home, *[p for p in existing if p != home]]

"""The worker process of the ``processes`` backend: runs the ClientApp on the calls it gets.

A worker talks to the grid over one Unix socket, strictly one call at a time::

    worker -> grid   READY                      the app is loaded (or FAILED + why, then exit)
    grid -> worker   CALL + request segment     (see _wire: message, context)
    worker -> grid   REPLY + reply segment      (the reply and the node's new state)
                     or FAILED + text segment   (why there is no reply)
    grid closes the socket                      the worker exits

Each operation is one byte with at most one segment's file descriptor attached (see
``_shm``). The worker lives for many calls and rounds, so whatever the ClientApp caches at
module level (a loaded dataset, a compiled model) stays warm in it.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Sequence

from fedlab.client import ClientApp
from fedlab.simulation._shm import (
    Buffer,
    close_inherited_segments,
    create_segment,
    open_segment,
    receive,
    send,
)
from fedlab.simulation._wire import decode_request, encode_reply

__all__ = ["CALL", "FAILED", "READY", "REPLY", "serve"]

READY, CALL, REPLY, FAILED = b"R", b"C", b"A", b"F"

# macOS may drop a descriptor whose sender closes it before the receiver has taken it, so
# there the worker keeps its last reply's descriptor until the grid's next operation.
_HOLD_SENT = sys.platform == "darwin"


def serve(
    sock: socket.socket, app: ClientApp | bytes, inherited: Sequence[int], threads: int | None = None
) -> None:
    """Answer calls on ``sock`` until the grid closes it (the worker process's entry point).

    Parameters
    ----------
    sock
        The worker's end of its socket.
    app
        The ClientApp (inherited with ``fork``) or its pickle (other start methods).
    inherited
        Descriptors a forked worker inherited and must close: the grid's ends of the
        other workers' sockets, so that each worker sees its grid go away.
    threads
        The number of threads torch and OpenMP/BLAS may use in this worker; None leaves
        them as the worker found them.
    """
    if threads is not None:
        limit_threads(threads)
    # Ctrl-C is meant for the grid's process, which then stops its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if inherited:  # forked: drop what this worker must not hold on to
        for fd in inherited:
            try:
                os.close(fd)
            except OSError:
                pass
        close_inherited_segments()
    try:
        client_app = app if isinstance(app, ClientApp) else _load(app)
    except BaseException:
        _report(
            sock,
            "The worker process could not load the ClientApp. A worker that is not forked "
            "imports the modules of the app's functions afresh: make them importable (on "
            "sys.path, with no side effects that need this process), or use "
            f"ProcessBackend(start_method='fork') on Linux.\n{traceback.format_exc()}",
        )
        return
    # A forked worker starts inside its parent's call stack, perhaps within an `except`
    # block there; a fresh thread has no exception being handled, so a client's error
    # traceback is the same as with any other backend.
    thread = threading.Thread(target=_serve_calls, args=(sock, client_app), name="fedlab-worker")
    thread.start()
    thread.join()


def limit_threads(threads: int) -> None:
    """Limit this process's compute threads: torch now, OpenMP/BLAS when first loaded.

    The environment variables reach libraries that a spawned worker, or a client,
    imports later; a forked worker that inherited an imported torch is told directly.
    """
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def _serve_calls(sock: socket.socket, app: ClientApp) -> None:
    try:
        send(sock, READY)
        _answer_calls(sock, app)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the grid closed the socket while we answered: it is stopping us


def _answer_calls(sock: socket.socket, app: ClientApp) -> None:
    held: int | None = None
    while True:
        op, fd = receive(sock)
        if held is not None:
            os.close(held)
            held = None
        if fd is None:  # b"": the grid closed the socket
            return
        try:
            if op == CALL:
                outcome, parts = _answer(app, fd)
            else:
                outcome, parts = _failed(f"The worker process got an unknown operation {op!r}.")
            sent = create_segment(parts)
        finally:
            os.close(fd)
        # The parts may view the request's segment: let it go now, not at the next call.
        del parts
        try:
            send(sock, outcome, sent)
        finally:
            if _HOLD_SENT:
                held = sent
            else:
                os.close(sent)


def _answer(app: ClientApp, fd: int) -> tuple[bytes, list[Buffer]]:
    try:
        message, context = decode_request(open_segment(fd))
    except Exception:
        return _failed(f"The worker process could not read the message:\n{traceback.format_exc()}")
    try:
        reply = app(message, context)
    except BaseException as exc:  # the ClientApp turns Exceptions into error replies itself
        return _failed(
            f"The ClientApp raised {type(exc).__name__} ({exc}), which is not an Exception, "
            f"so it did not become an error reply:\n{traceback.format_exc()}"
        )
    try:
        return REPLY, encode_reply(reply, context.state)
    except Exception as exc:
        return _failed(
            f"The reply or the new context.state of node {context.node_id} cannot be sent back "
            f"from the worker process: {exc}"
        )


def _failed(text: str) -> tuple[bytes, list[Buffer]]:
    return FAILED, [text.encode("utf-8", "replace")]


def _report(sock: socket.socket, text: str) -> None:
    outcome, parts = _failed(text)
    fd = create_segment(parts)
    try:
        send(sock, outcome, fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _load(payload: bytes) -> ClientApp:
    # Code, not data: the app's functions (by value when cloudpickle made the payload).
    app = pickle.loads(payload)
    if not isinstance(app, ClientApp):
        raise TypeError(f"expected a ClientApp, got {type(app).__name__}")
    return app

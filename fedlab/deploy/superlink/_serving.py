"""What the three SuperLink services share: object transfer, run protos, refusing requests.

Every refusal is a gRPC status with a message that says what to do; no Python traceback
crosses the wire, and refusals of untrusted input are logged as one rate-limited line each
(:mod:`fedlab.deploy.superlink._ratelog`). :class:`RunObjectCalls` holds the calls that the Control and ServerAppIo
services answer alike.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

import grpc

from fedlab.context import UserConfig
from fedlab.deploy import proto as pb
from fedlab.deploy.superlink._deadlines import Watch
from fedlab.deploy.superlink._ratelog import peer_of, refusals
from fedlab.deploy.superlink.objects import ObjectStore
from fedlab.deploy.superlink.runs import RunRow
from fedlab.deploy.superlink.state import LinkState
from fedlab.deploy.transport.channel import CHUNK_SIZE
from fedlab.deploy.transport.chunks import Chunk
from fedlab.errors import CodecError, DeployError, TransferError

__all__ = [
    "Admit",
    "RunObjectCalls",
    "abort",
    "guarded",
    "parse_config",
    "progressing",
    "receive_object",
    "refuse",
    "run_proto",
    "send_object",
]

F = TypeVar("F", bound=Callable[..., Any])
_log = logging.getLogger("fedlab.superlink")


def abort(context: Any, code: Any, message: str) -> NoReturn:
    """End the call with ``code`` and ``message`` (``context.abort`` raises)."""
    context.abort(code, message)
    raise AssertionError("unreachable")  # context.abort always raises


def _status_for(error: Exception) -> Any:
    if isinstance(error, TransferError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED if "above" in str(error) else grpc.StatusCode.DATA_LOSS
    if isinstance(error, CodecError):
        return grpc.StatusCode.INVALID_ARGUMENT
    return grpc.StatusCode.FAILED_PRECONDITION


def guarded(method: F) -> F:
    """Turn fedlab errors raised by a servicer method into gRPC statuses (also for streams)."""
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def stream(self: Any, request: Any, context: Any) -> Iterator[Any]:
            try:
                yield from method(self, request, context)
            except (DeployError, CodecError) as err:
                abort(context, _status_for(err), str(err))

        return stream  # type: ignore[return-value]

    @functools.wraps(method)
    def unary(self: Any, request: Any, context: Any) -> Any:
        try:
            return method(self, request, context)
        except (DeployError, CodecError) as err:
            abort(context, _status_for(err), str(err))

    return unary  # type: ignore[return-value]


def parse_config(text: str, what: str) -> UserConfig:
    """Parse a JSON object of bool/int/float/str values (a node or run config)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as err:  # RecursionError: nested too deeply
        raise CodecError(f"The {what} is not valid JSON ({err}).") from err
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, bool | int | float | str) for k, v in value.items()
    ):
        raise CodecError(f"The {what} must be a JSON object of bool, int, float and str values.")
    return value


def run_proto(run: RunRow) -> Any:
    """Return the ``Run`` message for a run row."""
    message = pb.Run(
        run_id=run.run_id,
        status=run.status,
        attached=run.attached,
        run_config_json=json.dumps(run.run_config),
        created_at=run.created_at,
        finished_at=run.finished_at,
        error=run.error,
        stop_requested=run.stop_requested,
    )
    if run.bundle_digest:
        message.bundle.digest = run.bundle_digest
        message.bundle.size = run.bundle_size
    return message


def refuse(context: Any, code: Any, reason: str, message: str) -> NoReturn:
    """End the call with ``code`` and ``message``, and log it as one rate-limited line.

    ``reason`` is a short tag grouping refusals in the log (``"upload quota"``).
    """
    refusals.refused(reason, peer_of(context), message)
    abort(context, code, message)


def progressing(chunks: Iterator[Any], watch: Watch | None) -> Iterator[Any]:
    """Yield ``chunks``, telling ``watch`` (if any) each time one arrives.

    Once the sender has sent everything the watch is closed: what follows (checking and
    storing the object) is the SuperLink's own work, not the peer's idling.
    """
    for chunk in chunks:
        if watch is not None:
            watch.progress()
        yield chunk
    if watch is not None:
        watch.close()


#: Called with an upload's ref once it is known to be new; refuses it (aborting the call)
#: or returns what to call when it ends (with True if the object was stored).
Admit = Callable[[Any], Callable[[bool], None]]


def receive_object(
    chunks: Iterator[Any],
    context: Any,
    store: ObjectStore,
    max_size: int,
    *,
    admit: Admit | None = None,
) -> Any:
    """Serve a PushObject call: store the streamed object after checking size and sha256.

    The object's bytes are stored as they arrive (never allocated from the announced
    size); ``admit``, if given, decides on each new object before its first byte is stored.
    """
    first = next(chunks, None)
    if first is None or first.ref is None:
        refuse(
            context,
            grpc.StatusCode.INVALID_ARGUMENT,
            "malformed upload",
            "An upload starts with a chunk carrying the object's ref.",
        )
    ref = first.ref
    if ref.size > max_size:
        refuse(
            context,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "oversized upload",
            f"Object {ref.digest[:12]} is {ref.size} bytes, above this SuperLink's limit of "
            f"{max_size}; start it with a larger --max-object-size if this is expected.",
        )
    try:
        if store.has(ref.digest):  # also checks the digest's form
            store.touch(ref.digest)
            return pb.PushObjectResponse(ref=ref, existed=True)
    except TransferError as err:
        refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "malformed upload", str(err))
    ended = admit(ref) if admit is not None else None
    stored = False
    writer = store.writer(ref.digest, ref.size)
    try:
        writer.write(first.offset, first.data)
        for chunk in chunks:
            writer.write(chunk.offset, chunk.data)
        writer.commit()
        stored = True
    except TransferError as err:
        writer.abort()
        refuse(context, grpc.StatusCode.DATA_LOSS, "damaged upload", str(err))
    except BaseException:  # the peer hung up, or its stream was ended for idling
        writer.abort()
        raise
    finally:
        if ended is not None:
            ended(stored)
    return pb.PushObjectResponse(ref=ref, existed=False)


def send_object(
    digest: str, offset: int, context: Any, store: ObjectStore, *, watch: Watch | None = None
) -> Iterator[Any]:
    """Serve a PullObject or FetchBundle call: stream an object from ``offset``.

    ``watch``, if given, learns each time the reader took a chunk (a reader that stops
    reading is then ended by its deadline instead of holding a worker thread).
    """
    try:
        size = store.size(digest)
    except TransferError as err:
        refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "malformed download", str(err))
    if size is None:
        abort(context, grpc.StatusCode.NOT_FOUND, f"Object {digest[:12]} is not stored here.")
    if offset > size:
        abort(
            context,
            grpc.StatusCode.OUT_OF_RANGE,
            f"Offset {offset} is past the end of object {digest[:12]} ({size} bytes).",
        )
    store.touch(digest)
    ref = pb.ObjectRef(digest=digest, size=size)
    position = offset
    for data in store.read(digest, offset, CHUNK_SIZE):
        yield Chunk(offset=position, data=data, ref=ref if position == offset else None)
        if watch is not None:
            watch.progress()
        position += len(data)
    if position == offset:  # nothing left to send: still tell the reader the ref
        yield Chunk(offset=offset, data=b"", ref=ref)


class RunObjectCalls(ABC):
    """GetRun, FinishRun and the object calls, which Control and ServerAppIo answer alike.

    A service sets :attr:`state` and :attr:`upload_limit` and says how it looks up a run
    (:meth:`_run`, which aborts with that service's own NOT_FOUND message). Only the calls
    its ``.proto`` service lists are served: Control has no PullObject.
    """

    state: LinkState
    #: The largest object (bytes) PushObject accepts.
    upload_limit: int

    @abstractmethod
    def _run(self, run_id: int, context: Any) -> RunRow:
        """Return the run ``run_id``, or abort the call with NOT_FOUND."""

    @guarded
    def GetRun(self, request: Any, context: Any) -> Any:
        return run_proto(self._run(request.run_id, context))

    @guarded
    def FinishRun(self, request: Any, context: Any) -> Any:
        self._run(request.run_id, context)
        run = self.state.finish_run(request.run_id, request.status, request.error)
        return pb.FinishRunResponse(run=run_proto(run))

    @guarded
    def FindMissingObjects(self, request: Any, context: Any) -> Any:
        return pb.FindMissingObjectsResponse(missing=self.state.objects.missing(request.digests))

    @guarded
    def PushObject(self, request_iterator: Iterator[Any], context: Any) -> Any:
        return receive_object(request_iterator, context, self.state.objects, self.upload_limit)

    @guarded
    def PullObject(self, request: Any, context: Any) -> Iterator[Any]:
        yield from send_object(request.digest, request.offset, context, self.state.objects)

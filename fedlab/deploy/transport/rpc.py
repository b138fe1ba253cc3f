"""gRPC servers and stubs built from the service descriptors, without generated code.

``grpcio-tools`` would generate ``*_pb2_grpc.py`` files that import ``*_pb2.py`` gencode,
which fedlab does not ship (see :mod:`fedlab.deploy.proto`). Everything that gencode
provides is a method path, a (de)serialiser per direction and a streaming flag, and all of
it is in the ServiceDescriptor, so this module builds the same objects at run time. The
one exception to "the message class serialises itself" is ``ObjectChunk``, the carrier
of bulk data, whose codec avoids copying (:mod:`fedlab.deploy.transport.chunks`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf import message_factory  # type: ignore[import-untyped, unused-ignore]

from fedlab.deploy.proto import service_descriptor
from fedlab.deploy.security.access import Caller, Gate, bound_caller
from fedlab.deploy.security.requests import EMPTY_BODY, AuthFailure, NodeSigner
from fedlab.deploy.transport.chunks import decode_chunk, encode_chunk

__all__ = ["Stub", "service_handler"]


_SERVER_FACTORIES = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


# Messages with a hand-written (wire-compatible) codec: the chunks that carry objects.
_CODECS: dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any]]] = {
    "fedlab.deploy.v1.ObjectChunk": (encode_chunk, decode_chunk),
}


def _codec(descriptor: Any) -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    """(serialise, deserialise) for a message type."""
    if descriptor.full_name in _CODECS:
        return _CODECS[descriptor.full_name]
    cls = message_factory.GetMessageClass(descriptor)
    return cls.SerializeToString, cls.FromString


def service_handler(
    service: str, servicer: object, gate: Gate, on_refused: Callable[[str, str, str], None] | None = None
) -> Any:
    """Return a generic handler serving ``service`` with ``servicer``'s methods.

    ``servicer`` has one method per RPC, named as in the ``.proto`` file, with gRPC's
    usual signature ``(request_or_iterator, context)``. Before a method runs, ``gate``
    admits the call (from its metadata and the SHA-256 of the serialised request) and the
    servicer reads the caller with :func:`fedlab.deploy.security.access.caller_of`; a call
    the gate refuses ends with UNAUTHENTICATED and ``on_refused(method, peer, reason)``.

    Raises
    ------
    TypeError
        If ``servicer`` lacks a method of the service (a programming error).
    """
    descriptor = service_descriptor(service)
    handlers = {}
    for method in descriptor.methods:
        implementation = getattr(servicer, method.name, None)
        if implementation is None:
            raise TypeError(f"{type(servicer).__name__} does not implement {service}.{method.name}")
        path = f"/{descriptor.full_name}/{method.name}"
        streaming = (method.client_streaming, method.server_streaming)
        decode = _codec(method.input_type)[1]
        handlers[method.name] = _SERVER_FACTORIES[streaming](
            _admitted(implementation, path, gate, streaming, on_refused),
            request_deserializer=decode if method.client_streaming else _with_digest(decode),
            response_serializer=_codec(method.output_type)[0],
        )
    return grpc.method_handlers_generic_handler(descriptor.full_name, handlers)


def _with_digest(decode: Callable[[bytes], Any]) -> Callable[[bytes], tuple[bytes, Any]]:
    def deserialize(data: bytes) -> tuple[bytes, Any]:
        return hashlib.sha256(data).digest(), decode(data)

    return deserialize


def _admitted(
    implementation: Callable[[Any, Any], Any],
    path: str,
    gate: Gate,
    streaming: tuple[bool, bool],
    on_refused: Callable[[str, str, str], None] | None,
) -> Callable[[Any, Any], Any]:
    """Wrap a servicer method so that it runs only for a caller ``gate`` admits."""

    def admit(digest: bytes, context: Any) -> Caller:
        metadata = {key: value for key, value in context.invocation_metadata() if isinstance(value, str)}
        try:
            return gate.admit(path, digest, metadata)
        except AuthFailure as err:
            if on_refused is not None:
                on_refused(path, context.peer(), str(err))
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(err))
            raise AssertionError("unreachable") from None  # context.abort always raises

    client_streaming, server_streaming = streaming
    if server_streaming:

        def stream(request: Any, context: Any) -> Iterator[Any]:
            digest, request = (EMPTY_BODY, request) if client_streaming else request
            caller = admit(digest, context)
            with bound_caller(context, caller):
                yield from implementation(request, context)

        return stream

    def unary(request: Any, context: Any) -> Any:
        digest, request = (EMPTY_BODY, request) if client_streaming else request
        caller = admit(digest, context)
        with bound_caller(context, caller):
            return implementation(request, context)

    return unary


class Stub:
    """Client-side callables for every RPC of a service, as attributes named after them.

    With ``signer`` every call carries a signed-request header (SuperNodes on Fleet); with
    ``token`` an ``authorization: Bearer`` header (Control and ServerAppIo).

    Examples
    --------
    >>> channel = grpc.insecure_channel("127.0.0.1:1")
    >>> stub = Stub(channel, "Fleet")
    >>> callable(stub.Register), callable(stub.PullObject)
    (True, True)
    >>> channel.close()
    """

    def __init__(
        self, channel: Any, service: str, *, signer: NodeSigner | None = None, token: str | None = None
    ) -> None:
        descriptor = service_descriptor(service)
        self._service = service
        self._calls: dict[str, Any] = {}
        header = (("authorization", f"Bearer {token}"),) if token else ()
        for method in descriptor.methods:
            kind = {
                (False, False): channel.unary_unary,
                (False, True): channel.unary_stream,
                (True, False): channel.stream_unary,
                (True, True): channel.stream_stream,
            }[(method.client_streaming, method.server_streaming)]
            path = f"/{descriptor.full_name}/{method.name}"
            serialize = _codec(method.input_type)[0]
            if signer is not None and not method.client_streaming:
                call = kind(path, request_serializer=_identity, response_deserializer=_codec(method.output_type)[1])
                self._calls[method.name] = _SignedCall(call, path, serialize, signer)
                continue
            call = kind(path, request_serializer=serialize, response_deserializer=_codec(method.output_type)[1])
            if signer is not None:
                self._calls[method.name] = _SignedCall(call, path, None, signer)
            elif header:
                self._calls[method.name] = _HeaderCall(call, header)
            else:
                self._calls[method.name] = call

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_calls"][name]
        except KeyError:
            raise AttributeError(f"The {self.__dict__.get('_service')} service has no RPC {name!r}") from None


def _identity(data: bytes) -> bytes:
    return data


class _HeaderCall:
    """A multi-callable that adds fixed metadata (a bearer token) to every call."""

    def __init__(self, call: Any, header: tuple[tuple[str, str], ...]) -> None:
        self._call, self._header = call, header

    def __call__(self, request: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        metadata = tuple(kwargs.pop("metadata", None) or ()) + self._header
        return self._call(request, timeout=timeout, metadata=metadata, **kwargs)

    def future(self, request: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Start the call without waiting (unary calls only), like gRPC's ``future``."""
        metadata = tuple(kwargs.pop("metadata", None) or ()) + self._header
        return self._call.future(request, timeout=timeout, metadata=metadata, **kwargs)


class _SignedCall:
    """A multi-callable that signs each request (serialised here, so the digest is exact)."""

    def __init__(self, call: Any, path: str, serialize: Callable[[Any], bytes] | None, signer: NodeSigner) -> None:
        self._call, self._path, self._serialize, self._signer = call, path, serialize, signer

    def __call__(self, request: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        body, metadata = self._signed(request, kwargs)
        return self._call(body, timeout=timeout, metadata=metadata, **kwargs)

    def future(self, request: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Start the call without waiting (unary calls only), like gRPC's ``future``."""
        body, metadata = self._signed(request, kwargs)
        return self._call.future(body, timeout=timeout, metadata=metadata, **kwargs)

    def _signed(self, request: Any, kwargs: dict[str, Any]) -> tuple[Any, tuple[tuple[str, str], ...]]:
        body = None if self._serialize is None else self._serialize(request)
        metadata = tuple(kwargs.pop("metadata", None) or ()) + self._signer.metadata(self._path, body)
        return (request if body is None else body), metadata

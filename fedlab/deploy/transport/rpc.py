"""gRPC servers and stubs built from the service descriptors, without generated code.

``grpcio-tools`` would generate ``*_pb2_grpc.py`` files that import ``*_pb2.py`` gencode,
which fedlab does not ship (see :mod:`fedlab.deploy.proto`). Everything that gencode
provides is a method path, a (de)serialiser per direction and a streaming flag, and all of
it is in the ServiceDescriptor, so this module builds the same objects at run time. The
one exception to "the message class serialises itself" is ``ObjectChunk``, the carrier
of bulk data, whose codec avoids copying (:mod:`fedlab.deploy.transport.chunks`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import message_factory  # type: ignore[import-untyped, unused-ignore]

from fedlab.deploy.proto import service_descriptor
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


def service_handler(service: str, servicer: object) -> Any:
    """Return a generic handler serving ``service`` with ``servicer``'s methods.

    ``servicer`` has one method per RPC, named as in the ``.proto`` file, with gRPC's
    usual signature ``(request_or_iterator, context)``.

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
        factory = _SERVER_FACTORIES[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = factory(
            implementation,
            request_deserializer=_codec(method.input_type)[1],
            response_serializer=_codec(method.output_type)[0],
        )
    return grpc.method_handlers_generic_handler(descriptor.full_name, handlers)


class Stub:
    """Client-side callables for every RPC of a service, as attributes named after them.

    Examples
    --------
    >>> channel = grpc.insecure_channel("127.0.0.1:1")
    >>> stub = Stub(channel, "Fleet")
    >>> callable(stub.Register), callable(stub.PullObject)
    (True, True)
    >>> channel.close()
    """

    def __init__(self, channel: Any, service: str) -> None:
        descriptor = service_descriptor(service)
        self._service = service
        self._calls: dict[str, Any] = {}
        for method in descriptor.methods:
            kind = {
                (False, False): channel.unary_unary,
                (False, True): channel.unary_stream,
                (True, False): channel.stream_unary,
                (True, True): channel.stream_stream,
            }[(method.client_streaming, method.server_streaming)]
            self._calls[method.name] = kind(
                f"/{descriptor.full_name}/{method.name}",
                request_serializer=_codec(method.input_type)[0],
                response_deserializer=_codec(method.output_type)[1],
            )

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_calls"][name]
        except KeyError:
            raise AttributeError(f"The {self.__dict__.get('_service')} service has no RPC {name!r}") from None

"""Protobuf classes and service descriptors of the deployment APIs, from ``services.desc``.

The committed artifact is the binary FileDescriptorSet ``services.desc``, compiled from
``common.proto``, ``fleet.proto``, ``serverappio.proto`` and ``control.proto`` by
``scripts/generate_proto.py``; there is no ``*_pb2.py`` or ``*_pb2_grpc.py`` gencode, for
the reason given in :mod:`fedlab.proto` (gencode breaks across protobuf majors). The gRPC
plumbing is built from the service descriptors by :mod:`fedlab.deploy.transport.rpc`.

Message classes are attributes of this module named as in the ``.proto`` files
(``proto.ObjectChunk``, ``proto.Run``, ...), built on first use. They are typed ``Any``:
their fields exist only at run time.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from google.protobuf import (  # type: ignore[import-untyped, unused-ignore]
    descriptor_pb2,
    descriptor_pool,
    message_factory,
)

__all__ = ["HEARTBEAT_INTERVAL_RANGE", "PACKAGE", "SERVICES", "message_class", "service_descriptor"]

#: The protobuf package of every deployment message and service.
PACKAGE = "fedlab.deploy.v1"
#: The three services: SuperNodes use Fleet, ServerApps ServerAppIo, the CLI Control.
SERVICES = ("Control", "Fleet", "ServerAppIo")
#: The heartbeat intervals, in seconds, a SuperLink accepts from a SuperNode (both ends).
HEARTBEAT_INTERVAL_RANGE = (0.1, 3600.0)


def _load_pool() -> Any:
    # A private pool keeps our names from clashing with anyone else's in the default pool.
    pool = descriptor_pool.DescriptorPool()
    raw = resources.files(__name__).joinpath("services.desc").read_bytes()
    for file in descriptor_pb2.FileDescriptorSet.FromString(raw).file:
        pool.AddSerializedFile(file.SerializeToString())  # dependency order, as protoc wrote it
    return pool


_pool = _load_pool()
_classes: dict[str, Any] = {}


def message_class(name: str) -> Any:
    """Return the class of message ``name`` (e.g. ``"ObjectChunk"``) of :data:`PACKAGE`."""
    cls = _classes.get(name)
    if cls is None:
        cls = _classes[name] = message_factory.GetMessageClass(
            _pool.FindMessageTypeByName(f"{PACKAGE}.{name}")
        )
    return cls


def service_descriptor(name: str) -> Any:
    """Return the ServiceDescriptor of ``name``, one of :data:`SERVICES`."""
    return _pool.FindServiceByName(f"{PACKAGE}.{name}")


def __getattr__(name: str) -> Any:
    if name[:1].isupper():
        try:
            return message_class(name)
        except KeyError:
            pass
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

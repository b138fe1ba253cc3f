"""Protobuf classes of the wire header, built at import from ``message.desc``.

The committed artifact is the binary FileDescriptorSet ``message.desc`` compiled from
``message.proto`` by ``scripts/generate_proto.py``, not ``*_pb2.py`` gencode: gencode
checks the protobuf runtime version at import and warns or fails across the protobuf
majors users have installed (e.g. in Colab), while a descriptor loads into any
protobuf >= 4.25. A private pool keeps our names from clashing with anyone else's.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from google.protobuf import (  # type: ignore[import-untyped, unused-ignore]
    descriptor_pb2,
    descriptor_pool,
    message_factory,
)

__all__ = [
    "ArrayHeaderProto",
    "ArrayRecordProto",
    "BoolListProto",
    "BytesListProto",
    "ConfigRecordProto",
    "DoubleListProto",
    "EntryProto",
    "ErrorProto",
    "IntListProto",
    "MessageProto",
    "MetadataProto",
    "MetricRecordProto",
    "RecordDictProto",
    "RecordProto",
    "StringListProto",
]


def _load_pool() -> Any:
    pool = descriptor_pool.DescriptorPool()
    raw = resources.files(__name__).joinpath("message.desc").read_bytes()
    for file in descriptor_pb2.FileDescriptorSet.FromString(raw).file:
        # AddSerializedFile is what gencode itself calls, so every protobuf backend has it.
        pool.AddSerializedFile(file.SerializeToString())
    return pool


_pool = _load_pool()


def _message_class(name: str) -> Any:
    # Typed Any: the fields exist only at run time, so no static type can describe them.
    return message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"fedlab.v1.{name}"))


ArrayHeaderProto = _message_class("ArrayHeader")
ArrayRecordProto = _message_class("ArrayRecord")
BoolListProto = _message_class("BoolList")
BytesListProto = _message_class("BytesList")
ConfigRecordProto = _message_class("ConfigRecord")
DoubleListProto = _message_class("DoubleList")
EntryProto = _message_class("Entry")
ErrorProto = _message_class("Error")
IntListProto = _message_class("IntList")
MessageProto = _message_class("Message")
MetadataProto = _message_class("Metadata")
MetricRecordProto = _message_class("MetricRecord")
RecordDictProto = _message_class("RecordDict")
RecordProto = _message_class("Record")
StringListProto = _message_class("StringList")

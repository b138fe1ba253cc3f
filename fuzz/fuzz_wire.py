"""Fuzz a WireMessage's header: arbitrary bytes as the ``WireMessage`` a node or ServerApp sends.

The promise (fedlab.deploy.transport.wire.decode_header): CodecError and nothing else
for a WireMessage that parses; protobuf's DecodeError for bytes that do not. Run:
``python fuzz/fuzz_wire.py fuzz/corpus/wire -runs=1000000``.
"""

from __future__ import annotations

from _common import instrumented, run

with instrumented():
    from google.protobuf.message import DecodeError

    from fedlab.deploy import proto as pb
    from fedlab.deploy.transport.wire import decode_header
    from fedlab.errors import CodecError

TARGET = "wire"


def test_one_input(data: bytes) -> None:
    """Parse ``data`` as a WireMessage and decode its header frame."""
    try:
        wire = pb.WireMessage.FromString(data)
    except DecodeError:
        return
    try:
        decode_header(wire)
    except CodecError:
        pass


if __name__ == "__main__":
    run(test_one_input)

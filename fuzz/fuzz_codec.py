"""Fuzz the message codec: arbitrary bytes into a Message or a RecordDict.

The promise (fedlab.wire.codec): decoding raises CodecError and nothing else, what
decodes encodes again into bytes that decode, and every decoded array converts to numpy.
Run:
``python fuzz/fuzz_codec.py fuzz/corpus/codec -runs=1000000``.
"""

from __future__ import annotations

from _common import instrumented, run

with instrumented():
    from fedlab.errors import CodecError
    from fedlab.records import ArrayRecord, RecordDict
    from fedlab.wire.codec import (
        decode_message,
        decode_record_dict,
        encode_message,
        encode_record_dict,
    )

TARGET = "codec"
#: Small enough that nothing the fuzzer writes is refused for its size alone.
MAX_SIZE = 1 << 20


def _use(records: RecordDict) -> None:
    for record in records.values():
        if isinstance(record, ArrayRecord):
            for array in record.values():
                array.numpy()


def test_one_input(data: bytes) -> None:
    """Decode ``data`` as a Message and as a RecordDict, as bytes and as a bytearray."""
    for raw in (data, bytearray(data)):  # views into bytes; copies out of a bytearray
        try:
            message = decode_message(raw, max_size=MAX_SIZE)
        except CodecError:
            pass
        else:
            decode_message(encode_message(message))
            if message.has_content():
                _use(message.content)
        try:
            records = decode_record_dict(raw, max_size=MAX_SIZE)
        except CodecError:
            pass
        else:
            decode_record_dict(encode_record_dict(records))
            _use(records)


if __name__ == "__main__":
    run(test_one_input)

"""Regenerate ``fedlab/proto/message.desc`` from ``fedlab/proto/message.proto``.

We commit a binary FileDescriptorSet instead of ``*_pb2.py`` gencode: gencode checks
the protobuf runtime version at import and warns or fails across protobuf majors, while
a descriptor loads into any protobuf >= 4.25 (see ``fedlab/proto/__init__.py``).

Usage::

    python scripts/generate_proto.py           # rewrite the committed descriptor
    python scripts/generate_proto.py --check   # exit 1 if it is out of date

Needs grpcio-tools (``pip install "fedlab-sdk[dev]"``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent.parent / "fedlab" / "proto"
PROTO_FILE = "message.proto"
DESCRIPTOR = PROTO_DIR / "message.desc"


def generate(out: Path) -> None:
    """Compile the .proto into a FileDescriptorSet at ``out`` (no source info, no imports)."""
    try:
        import grpc_tools  # noqa: F401  (only to give a clear error)
    except ImportError:
        sys.exit('generate_proto.py needs grpcio-tools: pip install "fedlab-sdk[dev]"')
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"--descriptor_set_out={out}", f"-I{PROTO_DIR}", PROTO_FILE,
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"protoc failed on {PROTO_DIR / PROTO_FILE}:\n{result.stderr}")


def same_descriptor(a: bytes, b: bytes) -> bool:
    """Return True if two serialised FileDescriptorSets describe the same thing.

    Compared parsed, not byte for byte, so that protoc versions that order the same fields
    differently on the wire do not count as drift.
    """
    if a == b:
        return True
    from google.protobuf import descriptor_pb2
    from google.protobuf.message import DecodeError

    parse = descriptor_pb2.FileDescriptorSet.FromString
    try:
        return bool(parse(a) == parse(b))
    except DecodeError:  # a corrupt committed file is simply out of date
        return False


def main(argv: list[str] | None = None) -> int:
    """Regenerate the descriptor, or with ``--check`` report whether it is up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the committed descriptor is stale"
    )
    args = parser.parse_args(argv)
    if not args.check:
        generate(DESCRIPTOR)
        print(f"wrote {DESCRIPTOR}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "message.desc"
        generate(fresh)
        committed = DESCRIPTOR.read_bytes() if DESCRIPTOR.exists() else b""
        if not same_descriptor(fresh.read_bytes(), committed):
            print(
                f"{DESCRIPTOR} is out of date with {PROTO_FILE}; "
                "run: python scripts/generate_proto.py",
                file=sys.stderr,
            )
            return 1
    print(f"{DESCRIPTOR} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Regenerate the committed protobuf descriptor sets from their ``.proto`` files.

Two sets are built:

- ``fedlab/proto/message.desc`` from ``fedlab/proto/message.proto`` (the wire codec's header);
- ``fedlab/deploy/proto/services.desc`` from the deployment services in
  ``fedlab/deploy/proto/`` (``common``, ``fleet``, ``serverappio``, ``control``).

We commit binary FileDescriptorSets instead of ``*_pb2.py`` gencode: gencode checks the
protobuf runtime version at import and warns or fails across protobuf majors, while a
descriptor loads into any protobuf >= 4.25 (see ``fedlab/proto/__init__.py`` and
``fedlab/deploy/proto/__init__.py``). gRPC service stubs are built at run time from the
service descriptors (``fedlab/deploy/transport/rpc.py``), so there is no ``*_pb2_grpc.py``
either.

Usage::

    python scripts/generate_proto.py           # rewrite the committed descriptors
    python scripts/generate_proto.py --check   # exit 1 if one is out of date

Needs grpcio-tools (``pip install "fedlab-sdk[dev]"``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    """One descriptor set: the .proto files it is compiled from, and where it goes."""

    proto_dir: Path
    proto_files: tuple[str, ...]
    descriptor: Path


TARGETS = (
    Target(ROOT / "fedlab" / "proto", ("message.proto",), ROOT / "fedlab" / "proto" / "message.desc"),
    Target(
        ROOT / "fedlab" / "deploy" / "proto",
        ("common.proto", "fleet.proto", "serverappio.proto", "control.proto"),
        ROOT / "fedlab" / "deploy" / "proto" / "services.desc",
    ),
)


def generate(target: Target, out: Path) -> None:
    """Compile ``target``'s .proto files into one FileDescriptorSet at ``out`` (no source info).

    Files are listed in dependency order, and ``--include_imports`` adds any file they
    import, so the set loads into an empty pool front to back.
    """
    try:
        import grpc_tools  # noqa: F401  (only to give a clear error)
    except ImportError:
        sys.exit('generate_proto.py needs grpcio-tools: pip install "fedlab-sdk[dev]"')
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc", "--include_imports",
        f"--descriptor_set_out={out}", f"-I{target.proto_dir}", *target.proto_files,
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"protoc failed on {target.proto_dir}:\n{result.stderr}")


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
    """Regenerate the descriptors, or with ``--check`` report whether they are up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a committed descriptor is stale"
    )
    args = parser.parse_args(argv)
    if not args.check:
        for target in TARGETS:
            generate(target, target.descriptor)
            print(f"wrote {target.descriptor}")
        return 0
    stale = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, target in enumerate(TARGETS):
            fresh = Path(tmp) / f"{index}.desc"
            generate(target, fresh)
            committed = target.descriptor.read_bytes() if target.descriptor.exists() else b""
            if not same_descriptor(fresh.read_bytes(), committed):
                stale.append(target)
    for target in stale:
        print(
            f"{target.descriptor} is out of date with {', '.join(target.proto_files)}; "
            "run: python scripts/generate_proto.py",
            file=sys.stderr,
        )
    if stale:
        return 1
    print("descriptors are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())

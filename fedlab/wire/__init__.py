"""The wire format: a Message or a RecordDict as bytes and back, without pickle.

:mod:`~fedlab.wire.codec`
    The frame (magic, protobuf header, raw array buffers), its bounds and its exactness.

Records hold data and know nothing of bytes; this package is the one place that turns
them into bytes, for everything that needs them: a deployment's gRPC transport
(:mod:`fedlab.deploy.transport.wire`), the ``processes`` and ``ray`` simulation backends,
and checkpoints (:mod:`fedlab.checkpoint`). The header's protobuf classes are built in
:mod:`fedlab.proto` from the committed descriptor.

Nothing is re-exported here, so that importing this package loads no protobuf.
"""

from __future__ import annotations

__all__: list[str] = []

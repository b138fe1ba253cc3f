"""What crosses the wire between a SuperLink and its clients, one concept per module.

:mod:`~fedlab.deploy.transport.channel`
    gRPC channels and servers with the settings every process shares; retries with backoff.
:mod:`~fedlab.deploy.transport.rpc`
    Stubs and service handlers built from the service descriptors (no generated stubs).
:mod:`~fedlab.deploy.transport.chunks`
    The ``ObjectChunk`` message with a codec that does not copy bulk data.
:mod:`~fedlab.deploy.transport.transfer`
    Objects by digest: uploads that skip what is stored, chunked downloads, checksums.
:mod:`~fedlab.deploy.transport.wire`
    A Message as a small header plus a content object, so a model is uploaded once.
:mod:`~fedlab.deploy.transport.events_json`
    Events as JSON, as the SuperLink journals them and ``fedlab log`` prints them.

Nothing is re-exported here: each user imports the module it needs, and pays only for it
(:mod:`~fedlab.deploy.transport.events_json` loads no grpc).
"""

from __future__ import annotations

__all__: list[str] = []

"""The body of each Ray actor of a :class:`~fedlab.simulation.RayBackend`.

It runs in a Ray worker process, which imports this module: it decodes a call made of
codec frames (the message, the node's configs and state, and any shared ArrayRecords
the pool put into the object store), runs the ClientApp, and encodes the reply and the
new state the same way. Nothing but the ClientApp itself is pickled.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, cast

from fedlab.context import Context, UserConfig
from fedlab.message import Message
from fedlab.records import RecordDict
from fedlab.wire.codec import decode_message, decode_record_dict, encode_message, encode_record_dict

if TYPE_CHECKING:
    from fedlab.client import ClientApp

__all__ = ["ClientActor"]


class ClientActor:
    """The body of one Ray actor: runs the ClientApp on codec frames."""

    def __init__(self, app: ClientApp) -> None:
        self._app = app

    def pid(self) -> int:
        """Return the worker's process id (also tells that the actor is up)."""
        return os.getpid()

    def run(
        self,
        run_id: int,
        node_id: int,
        frame: bytes,
        configs_frame: bytes,
        state_frame: bytes,
        keys: tuple[str, ...],
        *shared: bytes | None,
    ) -> tuple[bytes, bytes | None]:
        """Decode a call, run the app, return the encoded reply and the new state.

        The new state is ``None`` when the client left it as it was.
        """
        message = decode_message(frame)
        if keys:  # put the shared records back where they were
            rest = message.content
            content = RecordDict(
                {
                    key: rest[key] if data is None else decode_record_dict(data)["arrays"]
                    for key, data in zip(keys, shared, strict=True)
                }
            )
            message = Message.from_parts(message.metadata, content=content)
        configs = decode_record_dict(configs_frame)
        context = Context(
            run_id=run_id,
            node_id=node_id,
            node_config=cast(UserConfig, dict(configs.config_records["node-config"])),
            run_config=cast(UserConfig, dict(configs.config_records["run-config"])),
            state=decode_record_dict(state_frame),
        )
        reply = encode_message(self._app(message, context))
        state = encode_record_dict(context.state)
        return reply, None if state == state_frame else state

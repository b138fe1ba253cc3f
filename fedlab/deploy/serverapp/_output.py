"""Output that outlives its reader: a ServerApp must not die because its SuperLink did.

The SuperLink reads a ServerApp process's stdout and stderr through a pipe. When the
SuperLink is killed, the pipe has no reader any more and the next ``print`` (or log line)
raises ``BrokenPipeError``, which would end a run that a restarted SuperLink could have
carried on. :func:`survive_lost_reader` wraps both streams so that, from the first broken
pipe on, their file descriptors point at ``/dev/null`` instead (gRPC's own C-level writes
included) and the process carries on.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

__all__ = ["survive_lost_reader"]


class _SurvivingStream:
    """A text stream that swaps its file descriptor for /dev/null once its pipe breaks."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return self._stream.write(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()
            self._stream.flush()

    def _to_devnull(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def survive_lost_reader() -> None:
    """Make ``sys.stdout`` and ``sys.stderr`` survive the end of whoever reads them.

    Call it before logging is configured, so that log handlers write through the wrappers.
    """
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _SurvivingStream):
            setattr(sys, name, _SurvivingStream(stream))

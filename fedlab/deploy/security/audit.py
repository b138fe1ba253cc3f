"""The SuperLink's audit log: one JSON object per line, appended, never rewritten.

Each line has ``time`` (seconds since the epoch), ``action`` and who did it (``actor``:
``user:NAME``, ``node:ID``, ``serverapp:run-N``, ``insecure`` or ``unauthenticated``), plus
what the action is about. Actions: ``run.created``, ``run.stop_requested``,
``run.finished``, ``node.key_added``, ``node.key_removed``, ``node.registered``,
``node.unregistered``, ``user.added``, ``user.removed``, ``auth.refused`` (a call without
valid credentials: ``api``, ``method``, ``peer``, ``reason``), ``permission.denied`` and
``bundle.refused``. The file is created 0600.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["AuditLog"]


class AuditLog:
    """Appends audit records to ``path`` (None: records are dropped)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._fd: int | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.fchmod(self._fd, 0o600)

    def record(self, action: str, actor: str, **details: Any) -> None:
        """Append one record (thread-safe; each record is one ``write`` of one line)."""
        if self._fd is None:
            return
        line = json.dumps({"time": round(time.time(), 3), "action": action, "actor": actor, **details},
                          sort_keys=True, default=str)  # fmt: skip
        with self._lock:
            if self._fd is not None:
                os.write(self._fd, line.encode() + b"\n")

    def close(self) -> None:
        """Close the file (later records are dropped)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

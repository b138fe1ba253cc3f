"""Start a managed process so that it ends when the process that started it ends.

``python -m fedlab.deploy.local._child PARENT_PID MODULE ARGS...`` asks Linux to send
SIGTERM to this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``, which survives
``exec``), then becomes ``python -m MODULE ARGS...``. A notebook kernel that is killed or
restarted in the middle of ``fed.deploy(local=N)`` thus leaves no SuperLink or SuperNode
behind. Elsewhere it only runs the module; the parent's clean-up still applies.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

__all__ = ["main"]

_PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    """Arrange to die with the parent, then replace this process with the module."""
    parent, module, *args = argv
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != int(parent):  # the parent died before we asked: follow it now
            sys.exit(0)
    os.execv(sys.executable, [sys.executable, "-m", module, *args])


if __name__ == "__main__":
    main(sys.argv[1:])

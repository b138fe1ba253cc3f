"""Warm ClientApp processes: a SuperNode's fork server (Linux, local clusters).

A SuperNode forked from the local cluster's warm template has every import a ClientApp
process needs. :func:`start` (called in the node before it creates any gRPC object or
thread) makes the node a child subreaper and forks a small server that keeps those
imports and no thread. For each run process the node passes it the far ends of two
pipes (``SCM_RIGHTS``); the server forks a middle process that forks the ClientApp
process and exits at once, so the ClientApp process becomes the node's own child (the
node is its subreaper): the node waits for it and reads its exit status as it would a
:class:`subprocess.Popen`'s. The ClientApp process then runs
:func:`fedlab.deploy.supernode.clientapp_process.main` on those pipes, as a fresh one
would, with the node's process group and stderr.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO

__all__ = ["ForkServer", "WarmProcess", "current", "start"]

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_server: ForkServer | None = None


class WarmProcess:
    """A ClientApp process forked by the fork server, a child of this node."""

    def __init__(self, pid: int, stdin: IO[bytes], stdout: IO[bytes]) -> None:
        self.pid = pid
        self.stdin: IO[bytes] | None = stdin
        self.stdout: IO[bytes] | None = stdout
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code once ended (negative: the signal), else None."""
        if self.returncode is None:
            try:
                done, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: it ended
                self.returncode = -int(signal.SIGKILL)
                return self.returncode
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the end; raise :class:`subprocess.TimeoutExpired` after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
            time.sleep(0.005)
        return code

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` while the process runs."""
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        """SIGTERM."""
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL."""
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """This node's end of the fork server."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self.sock = sock
        self.pid = pid
        self._lock = threading.Lock()

    def spawn(self, pythonpath: str) -> WarmProcess | None:
        """A fresh ClientApp process, or None if the server is gone (start one cold)."""
        into_child, from_node = os.pipe()
        from_child, into_node = os.pipe()
        try:
            with self._lock:
                request = json.dumps({"pythonpath": pythonpath}).encode() + b"\n"
                socket.send_fds(self.sock, [request], [into_child, into_node])
                answer = b""
                while not answer.endswith(b"\n"):
                    piece = self.sock.recv(64)
                    if not piece:
                        raise OSError("the fork server closed its socket")
                    answer += piece
            pid = int(answer)
        except (OSError, ValueError):
            for fd in (from_node, from_child):
                os.close(fd)
            return None
        finally:
            os.close(into_child)
            os.close(into_node)
        return WarmProcess(pid, os.fdopen(from_node, "wb"), os.fdopen(from_child, "rb"))


def current() -> ForkServer | None:
    """This node's fork server, if :func:`start` made one."""
    return _server


def start(serve: Callable[[], int]) -> None:
    """Become a subreaper and fork the fork server (only while single-threaded).

    ``serve`` is what each forked ClientApp process runs on its pipes (stdin, stdout).
    """
    global _server
    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        return
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    node = os.getpid()
    pid = os.fork()
    if pid == 0:
        ours.close()
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != node:
            os._exit(0)
        code = 0
        try:
            _serve(theirs, serve)
        except BaseException:  # noqa: BLE001 - this process must never return into the node
            code = 1
        os._exit(code)
    theirs.close()
    _server = ForkServer(ours, pid)


def _serve(sock: socket.socket, serve: Callable[[], int]) -> None:
    while True:
        message, fds, _, _ = socket.recv_fds(sock, 4096, 2)
        if not message:
            return  # the node is gone
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            sock.sendall(b"error\n")
            continue
        request = json.loads(message)
        report_r, report_w = os.pipe()
        middle = os.fork()
        if middle == 0:
            os.close(report_r)
            child = os.fork()
            if child == 0:
                os.close(report_w)
                _become_clientapp(sock, fds, str(request["pythonpath"]), serve)
            os.write(report_w, f"{child}\n".encode())
            os._exit(0)
        os.close(report_w)
        for fd in fds:
            os.close(fd)
        os.waitpid(middle, 0)  # once it is gone, the ClientApp process is the node's child
        with os.fdopen(report_r, "rb") as report:
            pid = report.read().strip()
        sock.sendall(pid + b"\n")


def _become_clientapp(
    sock: socket.socket, fds: list[int], pythonpath: str, serve: Callable[[], int]
) -> None:
    sock.close()
    stdin, stdout = fds
    os.dup2(stdin, 0)
    os.dup2(stdout, 1)
    os.close(stdin)
    os.close(stdout)
    os.environ["PYTHONPATH"] = pythonpath
    sys.argv = ["fedlab.deploy.supernode.clientapp_process"]
    code = 1
    try:
        code = serve()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        atexit._run_exitfuncs()  # as an interpreter's normal exit would
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)

"""A warm template process that forks the local cluster's SuperLink and SuperNodes.

Starting a SuperLink or SuperNode as a fresh interpreter costs most of a second of CPU
(numpy, grpc, protobuf, cryptography); a local cluster of N nodes starts N + 1 of them.
``python -m fedlab.deploy.local._template PARENT_PID`` imports all that once, creates no
gRPC object and no thread, and then forks each managed process on request: the child
starts its own session, dies with the template (which dies with ``PARENT_PID``), writes
its output to its log file, takes the working directory and environment it was asked for,
and runs the module as ``python -m MODULE ARGS...`` would.

The protocol is lines of JSON. On stdin the template reads ``{"module": ..., "args": [...],
"log": ..., "cwd": ..., "env": {...}}`` and answers ``{"pid": N}`` (or ``{"error": ...}``)
on stdout; when a child ends, it reaps it and writes ``{"exit": N, "code": C}``, ``C``
negative for a signal, as :mod:`subprocess` reports it. EOF on stdin ends the template
(and, through ``PR_SET_PDEATHSIG``, its children). Linux only.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import runpy
import select
import signal
import sys
import tempfile
import threading
import warnings
from typing import Any, NoReturn

__all__ = ["main", "warm_up"]

_PR_SET_PDEATHSIG = 1


#: Threads of native libraries that survive a fork by design, set by :func:`warm_up`.
_native: set[str] = set()


def warm_up() -> None:
    """Import what the SuperLink, SuperNodes and ClientApp processes need.

    That includes :mod:`fedlab.strategy`: the module a Federation's bundle loads in each
    ClientApp process holds the strategy too, and importing it there would cost each
    process about 60 ms of CPU on the way to its first call.

    numpy's OpenBLAS starts its thread pool on import; it registers its own fork handler
    (``pthread_atfork``) that stops the pool before a fork and restarts it lazily after,
    so those threads, and only those, are allowed while forking.
    """
    import numpy  # noqa: F401

    _native.update(_tasks() - {str(threading.get_native_id())})
    import cryptography.hazmat.primitives.asymmetric.ed25519  # noqa: F401
    import grpc  # noqa: F401

    import fedlab.deploy.superlink.command
    import fedlab.deploy.superlink.server
    import fedlab.deploy.supernode.clientapp_process
    import fedlab.deploy.supernode.command
    import fedlab.deploy.supernode.node
    import fedlab.strategy  # noqa: F401


def die_with_parent(parent: int) -> None:
    """Get SIGTERM when the parent ends; exit now if it already has."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)


def _tasks() -> set[str]:
    return set(os.listdir("/proc/self/task"))


def single_threaded() -> bool:
    """True when only this thread runs, but for OpenBLAS's pool (see :func:`warm_up`).

    No Python thread, and no native thread started after numpy's import (gRPC creates
    its threads with its first channel or server, which the template never makes).
    """
    main = str(threading.get_native_id())
    return threading.active_count() == 1 and _tasks() - {main} <= _native


def _code(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


class _Template:
    def __init__(self, inbox: int, outbox: int) -> None:
        self.inbox = inbox
        self.outbox = outbox
        self.children: set[int] = set()
        self.pending = b""
        # A child's end wakes the select below at once (its exit is then reported): the C
        # signal handler writes to this pipe, which the select also watches.
        self.wakeup, wakeup_write = os.pipe()
        for fd in (self.wakeup, wakeup_write):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(wakeup_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self._wakeup_write = wakeup_write

    def forget_wakeup(self) -> None:
        """In a forked child: SIGCHLD back to its default, the template's pipe closed."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in (self.wakeup, self._wakeup_write):
            os.close(fd)

    def say(self, **fields: Any) -> None:
        os.write(self.outbox, (json.dumps(fields) + "\n").encode())

    def reap(self) -> None:
        for pid in list(self.children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                self.children.discard(pid)
                self.say(exit=pid, code=_code(status))

    def serve(self) -> dict[str, Any] | None:
        """Serve requests; return the request to run when this is a forked child."""
        while True:
            ready, _, _ = select.select([self.inbox, self.wakeup], [], [], 1.0)
            if self.wakeup in ready:
                _drain(self.wakeup)
            self.reap()
            if self.inbox not in ready:
                continue
            data = os.read(self.inbox, 65536)
            if not data:
                return None  # the cluster's owner closed the pipe
            self.pending += data
            while b"\n" in self.pending:
                line, self.pending = self.pending.split(b"\n", 1)
                request = json.loads(line)
                if not single_threaded():
                    self.say(
                        error=f"the template runs threads {sorted(_tasks())}; it forks only "
                        "while single-threaded"
                    )
                    continue
                settled, report = os.pipe()
                pid = os.fork()
                if pid == 0:
                    self.forget_wakeup()
                    os.close(settled)
                    os.setsid()  # before its pid is told: it can be signalled as a group
                    os.close(report)
                    return dict(request)
                os.close(report)
                os.read(settled, 1)  # EOF once the child has its own session (or died)
                os.close(settled)
                self.children.add(pid)
                self.say(pid=pid)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _become(request: dict[str, Any], template: _Template, template_pid: int) -> None:
    die_with_parent(template_pid)
    for fd in (template.inbox, template.outbox):
        os.close(fd)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    tempfile.tempdir = None  # found again from the TMPDIR just set
    sys.argv = [request["module"], *request["args"]]
    if request["module"] == "fedlab.deploy.supernode":
        from fedlab.deploy.supernode.clientapp_process import main as serve_run
        from fedlab.deploy.supernode.runner import prefork

        prefork(serve_run)  # its ClientApp processes are forked warm too


def main(argv: list[str]) -> None:
    """Warm up, then fork a managed process per request (see the module docstring)."""
    parent = int(argv[0])
    die_with_parent(parent)
    if sys.path and sys.path[0] == os.getcwd():
        del sys.path[0]  # what -m put there; the children get the directory they ask for
    inbox, outbox = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    warm_up()
    # Python 3.12+ warns on fork() while OS threads run; the only ones here are OpenBLAS's,
    # which stops them itself before each fork (see warm_up; single_threaded() checks).
    warnings.filterwarnings("ignore", r"This process .* is multi-threaded", DeprecationWarning)
    template = _Template(inbox, outbox)
    template.say(ready=os.getpid())
    template_pid = os.getpid()
    request = template.serve()
    if request is None:
        return
    _become(request, template, template_pid)
    _run(request["module"])


def _run(module: str) -> NoReturn:
    """Run ``module`` as ``python -m`` would, then end without the interpreter's teardown.

    The daemon has closed what it holds when its ``main`` returns; what is left is freeing
    every module's objects, a tenth of a second per process that the cluster's owner would
    wait for on the way to its result. Non-daemon threads are joined and exit handlers run
    first, as at a normal exit.
    """
    code: int = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as ended:
        if ended.code is None or isinstance(ended.code, int):
            code = ended.code or 0
        else:
            print(ended.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - reported as an uncaught error would be
        sys.excepthook(*sys.exc_info())
        code = 1
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])

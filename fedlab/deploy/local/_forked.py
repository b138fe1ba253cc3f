"""This side of the template process (:mod:`fedlab.deploy.local._template`).

:func:`template` starts the template once per interpreter (again if it died, or if
``PYTHONPATH`` changed since, as that decided its import path), and
:meth:`Template.spawn` returns a :class:`ForkedProcess`: the pid of a real process that
can be signalled and waited for like a :class:`subprocess.Popen`, its exit status
reported by the template, which is its parent.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from collections.abc import Callable
from typing import IO, Any, TypeVar

from fedlab.errors import DeployError

__all__ = ["ForkedProcess", "Template", "prestart", "template"]

_lock = threading.RLock()
_P = TypeVar("_P")
_current: Template | None = None


class ForkedProcess:
    """A process the template forked: ``pid``, ``poll()``, ``wait()``, ``send_signal()``."""

    def __init__(self, pid: int, template: Template) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._template = template
        self._ended = threading.Event()

    def _exited(self, code: int) -> None:
        self.returncode = code
        self._ended.set()

    def poll(self) -> int | None:
        """The exit code once the process has ended (negative: the signal), else None."""
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the end; raise :class:`subprocess.TimeoutExpired` after ``timeout`` s."""
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the process while it runs."""
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass


class Template:
    """A running template process and the children it forked for this interpreter."""

    def __init__(self) -> None:
        self.pythonpath = os.environ.get("PYTHONPATH", "")
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process = _from_lasting_thread(
            lambda: subprocess.Popen(
                [sys.executable, "-m", "fedlab.deploy.local._template", str(os.getpid())],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._errors,
                env=dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=_import_path()),
                cwd=tempfile.gettempdir(),
                start_new_session=True,
            )
        )
        self._children: dict[int, ForkedProcess] = {}
        self._answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self._send = threading.Lock()
        self._ready = False
        threading.Thread(target=self._listen, name="fedlab-template", daemon=True).start()

    @property
    def pid(self) -> int:
        """The template's own process id."""
        return self.process.pid

    def alive(self) -> bool:
        """True while the template runs."""
        return self.process.poll() is None

    def _listen(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for line in stdout:
            note = json.loads(line)
            if "pid" in note:  # registered here, before its exit note can be read
                child = ForkedProcess(int(note["pid"]), self)
                self._children[child.pid] = child
                note["child"] = child
            if "exit" in note:
                ended = self._children.pop(int(note["exit"]), None)
                if ended is not None:
                    ended._exited(int(note["code"]))
            else:
                self._answers.put(note)
        # The template ended: so did its children (they die with it).
        for orphan in list(self._children.values()):
            orphan._exited(-9)
        self._answers.put({"error": "the template process ended"})

    def _answer(self, timeout: float) -> dict[str, Any]:
        try:
            return self._answers.get(timeout=timeout)
        except queue.Empty:
            return {"error": f"the template process did not answer within {timeout:.0f}s"}

    def ready(self, timeout: float) -> None:
        """Wait until the template has imported everything; raise DeployError if it failed."""
        if self._ready:
            return
        answer = self._answer(timeout)
        if "ready" not in answer:
            raise DeployError(f"The local cluster's template process failed: {self._why(answer)}")
        self._ready = True

    def spawn(
        self, module: str, args: list[str], *, log: Path, cwd: Path, env: dict[str, str]
    ) -> ForkedProcess:
        """Fork ``python -m module args...`` (see :mod:`fedlab.deploy.local._template`)."""
        request = {"module": module, "args": args, "log": str(log), "cwd": str(cwd), "env": env}
        with self._send:
            stdin = self.process.stdin
            assert stdin is not None
            try:
                stdin.write((json.dumps(request) + "\n").encode())
                stdin.flush()
            except OSError as err:
                raise DeployError(f"The local cluster's template process is gone ({err}).") from err
            answer = self._answer(60.0)
            if "pid" not in answer:
                raise DeployError(f"The template could not start {module}: {self._why(answer)}")
            child = answer["child"]
            assert isinstance(child, ForkedProcess)
            return child

    def _why(self, answer: dict[str, Any]) -> str:
        self._errors.seek(0)
        output = self._errors.read().decode(errors="replace").strip()
        return str(answer.get("error")) + (f"\n{output[-2000:]}" if output else "")

    def stop(self) -> None:
        """End the template (its children receive SIGTERM as it ends)."""
        _close(self.process.stdin)
        try:
            self.process.wait(5.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        _close(self.process.stdout)
        self._errors.close()


_starts: queue.Queue[tuple[Callable[[], Any], queue.Queue[Any]]] = queue.Queue()
_starter: threading.Thread | None = None


def _from_lasting_thread(start: Callable[[], _P]) -> _P:
    """Run ``start()`` on a thread that lives as long as the interpreter.

    The template dies when the thread that started it ends (``PR_SET_PDEATHSIG`` follows
    the thread), so it is never started from a caller's thread that may end first.
    """
    global _starter
    with _lock:
        if _starter is None:
            _starter = threading.Thread(target=_serve_starts, name="fedlab-template", daemon=True)
            _starter.start()
    answer: queue.Queue[Any] = queue.Queue()
    _starts.put((start, answer))
    ok, value = answer.get()
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def _serve_starts() -> None:
    while True:
        start, answer = _starts.get()
        try:
            answer.put((True, start()))
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            answer.put((False, exc))


def _import_path() -> str:
    # The template runs elsewhere: it finds fedlab where this process found it, then
    # whatever PYTHONPATH already said (a relative entry would mean another directory).
    home = str(Path(__file__).resolve().parents[3])  # the folder holding fedlab/
    existing = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join([home, *[p for p in existing if p != home]])


def _close(stream: IO[bytes] | None) -> None:
    try:
        if stream is not None:
            stream.close()
    except OSError:
        pass


def prestart() -> None:
    """Start the template now, without waiting: it warms up while this process works on."""
    global _current
    with _lock:
        current = _current
        if (
            current is None
            or not current.alive()
            or current.pythonpath != os.environ.get("PYTHONPATH", "")
        ):
            if current is not None:
                current.stop()
            _current = Template()
            atexit.register(_stop_current)


def template(timeout: float) -> Template:
    """The running template of this interpreter, started (and waited for) if needed."""
    global _current
    prestart()
    current = _current
    assert current is not None
    try:
        with current._send:
            current.ready(timeout)
    except BaseException:
        with _lock:
            if _current is current:
                _current = None
        current.stop()
        raise
    return current


def _stop_current() -> None:
    global _current
    current, _current = _current, None
    if current is not None:
        current.stop()

"""The run engine: what a Federation runs, and the one way a run is executed.

A :class:`RunSpec` describes a federation's runs (its apps, clients, config, seed,
backend, display and checkpointing), checked once when the Federation is made. A
:class:`Runner` executes specs one at a time against a Grid made by a
:data:`GridFactory` (a simulation by default, a deployment's grid for
``Federation.deploy``), from a script, a running event loop or a notebook cell alike.

The modules, each one concept:

``spec``
    :class:`RunSpec` and the checks it is built with.
``settings``
    :class:`Settings`: a Federation's attributes, read from and replaced in its spec.
``runner``
    :class:`Runner`: counts, shows and stops a federation's runs.
``engine``
    One run on its own thread: its grid, History, and the check that it learned something.
``driver``
    The inboxes between the engine's thread and the caller's, and the one sync entry.
``resume``
    What checkpointing adds to a run, and :func:`load_for` to continue one.
``fork``
    :func:`fork`: a new run from a kept checkpoint of an earlier round.
"""

from __future__ import annotations

from fedlab.run.engine import GridFactory
from fedlab.run.fork import fork
from fedlab.run.resume import load_for
from fedlab.run.runner import Runner
from fedlab.run.settings import Settings
from fedlab.run.spec import RunSpec

__all__ = [
    "GridFactory",
    "RunSpec",
    "Runner",
    "Settings",
    "fork",
    "load_for",
]

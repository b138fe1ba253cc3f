"""Client devices: which accelerator (or the CPU) each client's code should use.

One setting, ``devices``, decides it everywhere: ``Federation(..., devices=...)`` for every
simulation backend and ``deploy(local=N)``, ``fedlab supernode --device ...`` (or
``$FEDLAB_DEVICE``; one device per node, ``"auto"`` picks the first GPU found) on a
SuperNode, and ``devices = ...`` in a project's ``simulation`` options or
``fedlab run --devices ...`` for ``fedlab run``. The chosen device string lands in each client's
``context.node_config["device"]``; client code reads it with :func:`client_device`::

    model.to(fl.client_device(ctx))

The value is ``"auto"`` (the default), ``"cpu"``, one device such as ``"cuda:1"``, or a list
of them. Client *i* (``partition-id`` *i*) gets ``devices[i % len(devices)]``. ``"auto"`` is
settled when a run starts, never at ``import fedlab``: every GPU that ``CUDA_VISIBLE_DEVICES``
lists, or else, if torch is installed and an NVIDIA driver is present (or torch is already
imported), every GPU ``torch.cuda`` counts; ``["cpu"]`` when there is none.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import overload

from fedlab.context import Context
from fedlab.errors import FederationError

__all__ = [
    "DEVICE_KEY",
    "DeviceConfigs",
    "Devices",
    "check_devices",
    "client_device",
    "device_for",
    "node_device",
    "resolve_devices",
]

#: The ``node_config`` key that holds a client's device string.
DEVICE_KEY = "device"

#: What ``devices=`` accepts: ``"auto"``, one device string, or a sequence of them.
Devices = str | Sequence[str]

_DEVICE = re.compile(r"(cpu|mps|(cuda|xpu|npu|hpu|mlu)(:\d+)?)")
_EXAMPLES = '"auto", "cpu", "cuda", "cuda:1", "mps" or a list such as ["cuda:0", "cuda:1"]'


def check_devices(devices: object, name: str = "devices") -> tuple[str, ...] | None:
    """Check a ``devices`` value; return its device strings, or None for ``"auto"``.

    Raises
    ------
    FederationError
        If it is not ``"auto"``, a device string or a non-empty list of them.

    Examples
    --------
    >>> check_devices("auto") is None, check_devices("cuda:1"), check_devices(["cpu", "cuda:0"])
    (True, ('cuda:1',), ('cpu', 'cuda:0'))
    """
    if isinstance(devices, str):
        if devices == "auto":
            return None
        items: list[object] = [devices]
    elif isinstance(devices, Sequence) and not isinstance(devices, bytes) and len(devices) > 0:
        items = list(devices)
    else:
        raise FederationError(f"{name}={devices!r} is not a device; give {_EXAMPLES}.")
    for item in items:
        if not isinstance(item, str) or _DEVICE.fullmatch(item) is None:
            raise FederationError(
                f"{name}: {item!r} is not a device string; give {_EXAMPLES} "
                "(a list holds device strings only, not \"auto\")."
            )
    return tuple(str(item) for item in items)


def resolve_devices(devices: Devices = "auto") -> tuple[str, ...]:
    """Return the device strings ``devices`` stands for, detecting GPUs for ``"auto"``.

    ``"auto"`` gives ``cuda:0`` ... ``cuda:n-1`` for the *n* GPUs that
    ``CUDA_VISIBLE_DEVICES`` lists (as torch numbers them), or else that ``torch.cuda``
    counts when torch is already imported, or installed beside an NVIDIA driver; otherwise
    ``("cpu",)``. torch is never imported on a machine without an NVIDIA driver.

    Raises
    ------
    FederationError
        If ``devices`` is not a valid ``devices`` value (see :func:`check_devices`).

    Examples
    --------
    >>> resolve_devices(["cuda:0", "cuda:1"]), resolve_devices("cpu")
    (('cuda:0', 'cuda:1'), ('cpu',))
    """
    given = check_devices(devices)
    if given is not None:
        return given
    count = _gpu_count()
    return tuple(f"cuda:{i}" for i in range(count)) if count > 0 else ("cpu",)


def node_device(device: str) -> str:
    """The one device of a SuperNode: ``device`` checked, ``"auto"`` settled to the first found.

    Raises
    ------
    FederationError
        If ``device`` is not ``"auto"`` or one device string.

    Examples
    --------
    >>> node_device("cuda:1")
    'cuda:1'
    """
    given = check_devices(device, "--device")
    if given is not None and len(given) != 1:
        raise FederationError(f"--device={device!r}: a SuperNode takes one device, e.g. cuda:1.")
    return resolve_devices(device)[0]


def device_for(devices: Sequence[str], index: int) -> str:
    """The device of client ``index`` (its ``partition-id``): ``devices[index % len(devices)]``.

    Examples
    --------
    >>> [device_for(["cuda:0", "cuda:1"], i) for i in range(3)]
    ['cuda:0', 'cuda:1', 'cuda:0']
    """
    return devices[index % len(devices)]


class DeviceConfigs(Sequence[Mapping[str, bool | int | float | str]]):
    """Per-node configs with each node's ``device`` added, made one node at a time.

    Node *i* gets ``{"device": device_for(devices, i)}`` updated with ``node_configs[i]``
    (so a ``device`` given there wins). Nothing is built for nodes never addressed.

    Examples
    --------
    >>> configs = DeviceConfigs(("cuda:0", "cuda:1"), 3, [{}, {"lr": 0.1}, {"device": "cpu"}])
    >>> list(configs)
    [{'device': 'cuda:0'}, {'device': 'cuda:1', 'lr': 0.1}, {'device': 'cpu'}]
    """

    def __init__(
        self,
        devices: Sequence[str],
        num_nodes: int,
        node_configs: Sequence[Mapping[str, bool | int | float | str]] | None = None,
    ) -> None:
        self._devices = tuple(devices)
        self._num_nodes = num_nodes if node_configs is None else len(node_configs)
        self._node_configs = node_configs

    def __len__(self) -> int:
        return self._num_nodes

    @overload
    def __getitem__(self, index: int) -> Mapping[str, bool | int | float | str]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Mapping[str, bool | int | float | str]]: ...

    def __getitem__(
        self, index: int | slice
    ) -> Mapping[str, bool | int | float | str] | Sequence[Mapping[str, bool | int | float | str]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._num_nodes))]
        if index < 0:
            index += self._num_nodes
        if not 0 <= index < self._num_nodes:
            raise IndexError(index)
        config: dict[str, bool | int | float | str] = {DEVICE_KEY: device_for(self._devices, index)}
        if self._node_configs is not None:
            config.update(self._node_configs[index])
        return config


def client_device(context: Context) -> str:
    """The device this client should use, e.g. ``"cuda:1"``; ``"cpu"`` when none was set.

    The string is what ``torch.device(...)`` (and ``model.to(...)``) accepts.

    Examples
    --------
    >>> import fedlab as fl
    >>> fl.client_device(fl.Context(run_id=1, node_id=5, node_config={"device": "cuda:1"}))
    'cuda:1'
    >>> fl.client_device(fl.Context(run_id=1, node_id=5))
    'cpu'
    """
    value = context.node_config.get(DEVICE_KEY, "cpu")
    return value if isinstance(value, str) and value != "auto" else "cpu"


def _gpu_count() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and "torch" not in sys.modules:
        entries = [e.strip() for e in visible.split(",") if e.strip()]
        # CUDA stops at the first invalid entry; "-1" (or "") hides every GPU.
        count = 0
        for entry in entries:
            if entry.startswith("-"):
                break
            count += 1
        return count
    if "torch" in sys.modules or (
        Path("/proc/driver/nvidia/gpus").is_dir() and importlib.util.find_spec("torch") is not None
    ):
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    return 0

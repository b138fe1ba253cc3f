"""``fedlab.deploy``: its public names, and what importing it costs."""

from __future__ import annotations

import subprocess
import sys

import pytest

import fedlab.deploy


def test_importing_fedlab_deploy_and_its_lazy_parts_loads_neither_grpc_nor_protobuf() -> None:
    code = (
        "import sys, fedlab.deploy, fedlab.deploy.local\n"
        "heavy = ('grpc', 'google.protobuf', 'cryptography', 'numpy')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
        "import fedlab.deploy.transport.events_json\n"  # what `fedlab log` reads events with
        "print(','.join(m for m in heavy[:3] if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["", ""]


def test_each_public_name_is_the_object_its_part_defines() -> None:
    from fedlab.deploy import bundle, client, local, superlink, supernode
    from fedlab.deploy.transport import events_json

    homes = {
        "Bundle": bundle, "build_bundle": bundle, "load_bundle": bundle,
        "ControlClient": client, "GrpcGrid": client, "NodeInfo": client, "RunInfo": client,
        "deploy": local, "SuperLink": superlink, "SuperNode": supernode,
        "event_from_json": events_json, "event_to_json": events_json,
    }  # fmt: skip
    assert sorted(homes) == sorted(fedlab.deploy.__all__)
    for name, home in homes.items():
        assert getattr(fedlab.deploy, name) is getattr(home, name), name


def test_an_unknown_attribute_of_fedlab_deploy_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="'fedlab.deploy' has no attribute 'GrpcGird'"):
        fedlab.deploy.GrpcGird  # type: ignore[attr-defined]  # noqa: B018

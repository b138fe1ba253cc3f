"""Every client gets its device in ``node_config["device"]``, on every simulation backend."""

from __future__ import annotations

import numpy as np
import pytest

import fedlab as fl
from fedlab.simulation import Backend, InlineBackend, ThreadBackend
from fedlab.simulation.processes import ProcessBackend
from fedlab.simulation.ray_backend import RayBackend
from fedlab.strategy import FedAvg
from tests.integration.device_apps import reporting_app


def devices_seen(backend: Backend, devices: object, **options: object) -> dict[int, int]:
    fed = fl.Federation(
        reporting_app(),
        strategy=FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=5,
                        min_available_nodes=5),
        num_clients=5,
        initial_arrays=[np.zeros(2)],
        seed=1,
        backend=backend,
        display="none",
        devices=devices,  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )
    result = fed.run(rounds=1)
    assert result.history is not None
    return {pid: rounds[1] for pid, rounds in result.history.client_metric("device").items()}


@pytest.mark.parametrize("kind", ["inline", "threads", "processes", "ray"])
def test_client_i_gets_devices_i_modulo_their_number_on_every_backend(kind: str, request: pytest.FixtureRequest) -> None:
    backends = {
        "inline": InlineBackend,
        "threads": lambda: ThreadBackend(2),
        "processes": lambda: ProcessBackend(2),
        "ray": lambda: RayBackend(address=request.getfixturevalue("cluster"), num_cpus=1),
    }
    seen = devices_seen(backends[kind](), ["cuda:0", "cuda:1"])  # type: ignore[no-untyped-call]
    assert seen == {0: 0, 1: 1, 2: 0, 3: 1, 4: 0}


def test_one_device_goes_to_every_client_and_a_node_config_device_wins() -> None:
    assert devices_seen(ThreadBackend(2), "cuda:3") == dict.fromkeys(range(5), 3)
    configs = [{}, {"device": "cpu"}, {}, {}, {"device": "cuda:7"}]
    seen = devices_seen(InlineBackend(), ["cuda:0", "cuda:1", "cuda:2"], node_configs=configs)
    assert seen == {0: 0, 1: -1, 2: 2, 3: 0, 4: 7}

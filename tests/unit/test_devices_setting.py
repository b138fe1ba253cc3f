"""The ``devices`` setting: checked values, clear errors, and ``"auto"`` detected lazily."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import fedlab as fl
from fedlab.deploy.supernode.command import main as supernode_main
from fedlab.devices import DeviceConfigs, check_devices, resolve_devices
from fedlab.errors import FederationError


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "CUDA:0", "cuda:0,cuda:1", "", [], ["auto"], [0], 3, None])
def test_a_bad_device_is_refused_when_the_federation_is_made_naming_it(bad: object) -> None:
    with pytest.raises(FederationError, match="not a device") as caught:
        fl.Federation(fl.ClientApp(), server_app=fl.ServerApp(), display="none",
                      devices=bad)  # type: ignore[arg-type]  # fmt: skip
    assert repr(bad if not isinstance(bad, list) or not bad else bad[0]) in str(caught.value)
    assert '"cuda:1"' in str(caught.value)  # the fix: what to write instead


def test_given_devices_are_kept_as_given_and_shown_as_the_federation_attribute() -> None:
    fed = fl.Federation(fl.ClientApp(), server_app=fl.ServerApp(), display="none",
                        devices=["cuda:1", "cpu", "mps"])  # fmt: skip
    assert fed.devices == ("cuda:1", "cpu", "mps")
    assert fl.Federation(fl.ClientApp(), server_app=fl.ServerApp(), display="none").devices == "auto"
    assert check_devices("cuda") == ("cuda",) and resolve_devices("cpu") == ("cpu",)


def test_device_configs_spread_lazily_and_keep_the_node_configs_length_check() -> None:
    configs = DeviceConfigs(("cuda:0", "cuda:1"), 1_000_000)
    assert len(configs) == 1_000_000
    assert configs[999_999] == {"device": "cuda:1"} and configs[-2] == {"device": "cuda:0"}
    assert DeviceConfigs(("cpu",), 10, [{}, {}]).__len__() == 2  # Population refuses 2 != 10
    with pytest.raises(IndexError):
        configs[1_000_000]


AUTO = """
import sys, numpy as np, fedlab as fl
app = fl.ClientApp()
@app.train()
def train(msg, ctx):
    d = fl.client_device(ctx)
    m = {"num-examples": 1, "device": -1 if d == "cpu" else int(d.split(":")[1])}
    return msg.reply(fl.RecordDict({"arrays": msg.content["arrays"], "metrics": fl.MetricRecord(m)}))
fed = fl.Federation(app, strategy=fl.strategy.FedAvg(fraction_evaluate=0.0), num_clients=3,
                    initial_arrays=[np.zeros(1)], seed=0, display="none")
seen = fed.run(rounds=1).history.client_metric("device")
print([seen[p][1] for p in range(3)], "torch" in sys.modules)
"""


@pytest.mark.parametrize(
    ("visible", "expected"),
    [("0,1", [0, 1, 0]), ("3", [0, 0, 0]), ("", [-1, -1, -1]), ("-1", [-1, -1, -1]), ("2,-1,0", [0, 0, 0])],
)
def test_auto_spreads_over_the_gpus_cuda_visible_devices_lists_without_importing_torch(
    visible: str, expected: list[int]
) -> None:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES=visible)
    out = subprocess.run([sys.executable, "-c", AUTO], env=env, capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    assert out.stdout.strip() == f"{expected} False"


def test_client_device_is_cpu_without_a_setting_and_import_fedlab_imports_no_torch() -> None:
    assert fl.client_device(fl.Context(run_id=1, node_id=2, node_config={"device": "cuda:2"})) == "cuda:2"
    assert fl.client_device(fl.Context(run_id=1, node_id=2)) == "cpu"
    code = "import sys, fedlab as fl; fl.client_device; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_a_supernode_with_a_bad_device_exits_with_an_error_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    status = supernode_main(["--insecure", "--insecure-allow-unsigned", "--device", "gpu:0"])
    assert status == 1
    assert "'gpu:0' is not a device string" in capsys.readouterr().err
    status = supernode_main(["--insecure", "--insecure-allow-unsigned", "--device", "cuda:0,cuda:1"])
    assert status == 1
    assert "is not a device string" in capsys.readouterr().err


"""`Federation.deploy`: the same federation on real SuperLink/SuperNode processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fedlab import ArrayRecord, ClientApp, Context, Federation, Message, MetricRecord, RecordDict
from fedlab.deploy.local import managed
from fedlab.deploy.local._cluster import LocalCluster
from fedlab.errors import FederationError
from fedlab.events import ClientReplied, Event
from fedlab.strategy import FedAvg


def make_app() -> ClientApp:
    # Defined in a function, so the bundle captures it by value (as from a notebook).
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid = int(ctx.node_config["partition-id"])
        w = msg.content.array_record("arrays").to_numpy()[0] * 0.5 + (pid + 1)
        metrics = MetricRecord({"num-examples": pid + 1, "loss": float(pid)})
        return msg.reply(RecordDict({"arrays": ArrayRecord([w]), "metrics": metrics}))

    return app


def make_fed(num_clients: int = 3, evaluate_fn: object = None) -> Federation:
    strategy = FedAvg(
        fraction_train=1.0,
        fraction_evaluate=0.0,
        min_train_nodes=num_clients,
        min_available_nodes=num_clients,
    )
    return Federation(
        make_app(),
        strategy=strategy,
        num_clients=num_clients,
        initial_arrays=[np.zeros(4, np.float32)],
        evaluate_fn=evaluate_fn,  # type: ignore[arg-type]
        seed=3,
        display="none",
    )


@pytest.fixture
def clusters(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[LocalCluster]]:
    """Every LocalCluster deploy() starts, to check its processes afterwards."""
    started: list[LocalCluster] = []

    class Recorded(LocalCluster):
        def start(self):  # type: ignore[no-untyped-def]
            started.append(self)
            return super().start()

    monkeypatch.setattr(managed, "LocalCluster", Recorded)
    yield started
    for cluster in started:
        cluster.stop()


def assert_gone(pids: list[int]) -> None:
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie awaiting its reaper counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


KILLED_PARENT = """
import time
from fedlab.deploy.local._cluster import LocalCluster
cluster = LocalCluster(1, ["partition-id=0 num-partitions=1"])
cluster.start()
print(cluster.directory, *cluster.pids, flush=True)
time.sleep(600)
"""


def test_deploy_local_ends_with_the_arrays_of_a_simulation_and_leaves_no_process(
    clusters: list[LocalCluster],
) -> None:
    simulated = make_fed().run(rounds=3)
    events: list[Event] = []
    fed = make_fed()
    fed.subscribe(events.append)
    deployed = fed.deploy(local=3, rounds=3)
    # Round r: w_r = w_{r-1} / 2 + (1*1 + 2*2 + 3*3) / 6, from w_0 = 0.
    expected = 0.0
    for _ in range(3):
        expected = expected / 2 + 14 / 6
    np.testing.assert_allclose(
        deployed.arrays.to_numpy()[0], np.full(4, expected, np.float32), rtol=1e-6
    )
    assert deployed.arrays == simulated.arrays
    assert deployed.train_metrics_clientapp == simulated.train_metrics_clientapp
    assert deployed.history is not None and deployed.history.rounds_completed == 3
    replies = [e for e in events if isinstance(e, ClientReplied)]
    assert sorted(e.partition_id for e in replies if e.round == 1) == [0, 1, 2]  # type: ignore[type-var]
    (cluster,) = clusters
    assert len(cluster.pids) == 4 and not cluster.directory.exists()
    assert_gone(cluster.pids)


@pytest.mark.parametrize("failure", [RuntimeError("evaluation broke"), KeyboardInterrupt()])
def test_a_run_that_fails_or_is_interrupted_still_stops_every_process(
    failure: BaseException, clusters: list[LocalCluster]
) -> None:
    def evaluate_fn(rnd: int, arrays: ArrayRecord) -> dict[str, float]:
        if rnd == 1:
            raise failure
        return {}

    with pytest.raises(type(failure)):
        make_fed(evaluate_fn=evaluate_fn).deploy(local=3, rounds=3)
    (cluster,) = clusters
    assert_gone(cluster.pids)


def test_deploy_to_a_running_superlink_gives_the_simulation_result() -> None:
    with LocalCluster(
        2, ["partition-id=0 num-partitions=2", "partition-id=1 num-partitions=2"]
    ) as cluster:
        assert cluster.addresses is not None
        # Over TLS with the cluster's CA, as the admin, as a user on another machine would.
        secrets = cluster.directory
        deployed = make_fed(2).deploy(cluster.addresses.control, rounds=2, root_cert=secrets / "certs" / "ca.pem",
                                      token_file=secrets / "admin.token")  # fmt: skip
        assert deployed.arrays == make_fed(2).run(rounds=2).arrays
        # The SuperNodes keep serving after the run: the SuperLink recorded it as completed.
        from fedlab.deploy.client.control_client import ControlClient

        with ControlClient(cluster.addresses.control, security=cluster.security) as control:
            (run,) = control.list_runs()
            assert (run.status, run.attached) == ("completed", True)
            assert len(control.list_nodes()) == 2


def test_another_process_on_the_host_cannot_use_a_local_cluster() -> None:
    import grpc

    from fedlab.deploy import proto as pb
    from fedlab.deploy.client.control_client import ControlClient
    from fedlab.deploy.security import INSECURE, ClientSecurity
    from fedlab.deploy.transport.channel import open_channel
    from fedlab.deploy.transport.rpc import Stub
    from fedlab.errors import DeployError

    with LocalCluster(1, ["partition-id=0 num-partitions=1"]) as cluster:
        assert cluster.addresses is not None
        # Its secrets are its own: the directory is private, the token owner-only.
        assert os.stat(cluster.directory).st_mode & 0o077 == 0
        assert os.stat(cluster.directory / "admin.token").st_mode & 0o077 == 0
        ca = (cluster.directory / "certs" / "ca.pem").read_bytes()
        with ControlClient(cluster.addresses.control, security=ClientSecurity(root_certificates=ca, token="guess"),
                           timeout=5) as outsider, pytest.raises(DeployError, match="not valid"):  # fmt: skip
            outsider.create_run(b"", attached=True)
        plain = Stub(open_channel(cluster.addresses.fleet, INSECURE), "Fleet")
        with pytest.raises(grpc.RpcError) as caught:
            plain.Register(pb.RegisterRequest(node_config_json="{}", heartbeat_interval=30.0), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # no TLS, no talk


def test_processes_end_when_the_process_that_started_them_is_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", KILLED_PARENT], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    directory, *pids = parent.stdout.readline().split()
    try:
        assert all(alive(int(pid)) for pid in pids)
        parent.kill()  # as a notebook kernel killed mid-run: no clean-up code runs
        parent.wait()
        deadline = time.monotonic() + 120
        while any(alive(int(pid)) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in pids if alive(int(pid))]
    finally:
        for pid in pids:
            if alive(int(pid)):
                os.kill(int(pid), 9)
        shutil.rmtree(directory, ignore_errors=True)
        parent.stdout.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "Give either local=N"),
        ({"address": "h:1", "local": 2}, "Give either local=N"),
        ({"local": 0}, "positive number of SuperNodes"),
        ({"address": "127.0.0.1:9093"}, "needs your Control API token: pass token_file="),
    ],
)
def test_deploy_arguments_must_describe_one_deployment(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(FederationError, match=message):
        make_fed().deploy(**kwargs)  # type: ignore[arg-type]


def test_a_checkpointing_federation_cannot_be_deployed(tmp_path: object) -> None:
    fed = make_fed()
    fed.checkpoint_dir = str(tmp_path)
    with pytest.raises(FederationError, match="Checkpoints are for simulations"):
        fed.deploy(local=2)


# -- code from the user's folder ---------------------------------------------------------------

HELPERS = """
import numpy as np

def step(w, pid):
    return np.asarray(w) * 0.5 + (pid + 1)
"""

CLIENT_MODULE = """
import fedlab as fl
from fedlab import ArrayRecord, MetricRecord, RecordDict
from helpers import step

app = fl.ClientApp()

@app.train()
def train(msg, ctx):
    pid = int(ctx.node_config["partition-id"])
    w = step(msg.content.array_record("arrays").to_numpy()[0], pid)
    return msg.reply(RecordDict({"arrays": ArrayRecord([w]),
                                 "metrics": MetricRecord({"num-examples": pid + 1})}))
"""


@pytest.fixture
def user_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder of the user's own modules, importable here only through sys.path."""
    folder = tmp_path / "user"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(str(folder)):
            del sys.modules[name]


def test_a_client_module_importing_a_helper_from_its_folder_runs_on_nodes_elsewhere(
    user_folder: Path, clusters: list[LocalCluster]
) -> None:
    from fedlab.deploy.bundle import build_bundle, load_bundle
    from fedlab.events import RoundStarted

    (user_folder / "helpers.py").write_text(HELPERS)
    (user_folder / "user_client_app.py").write_text(CLIENT_MODULE)
    import user_client_app  # type: ignore[import-not-found]

    bundle = load_bundle(build_bundle(user_client_app.app))
    assert sorted(bundle.files) == ["helpers.py", "user_client_app.py"]
    assert bundle.manifest["requires"]["numpy"] == ["numpy"]

    def fed() -> Federation:
        strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=2,
                          min_available_nodes=2)  # fmt: skip
        return Federation(user_client_app.app, strategy=strategy, num_clients=2,
                          initial_arrays=[np.zeros(3, np.float32)], display="none")  # fmt: skip

    seen: dict[int, tuple[str, str]] = {}

    def look_at_the_nodes(event: Event) -> None:
        if isinstance(event, RoundStarted) and not seen:
            for pid in clusters[0].pids[1:]:  # the SuperNodes, while they run
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                paths = [e for e in environ if e.startswith(b"PYTHONPATH=")]
                seen[pid] = (os.readlink(f"/proc/{pid}/cwd"), b"".join(paths).decode())

    deployed = fed()
    deployed.subscribe(look_at_the_nodes)
    result = deployed.deploy(local=2, rounds=2)
    # w_r = w_{r-1} / 2 + (1*1 + 2*2) / 3 from 0, as in the simulation.
    expected = np.full(3, 5 / 3 / 2 + 5 / 3, np.float32)
    np.testing.assert_allclose(result.arrays.to_numpy()[0], expected, rtol=1e-6)
    assert result.arrays == fed().run(rounds=2).arrays
    # The nodes ran in a folder of their own, with nothing of the user's on their path.
    assert len(seen) == 2
    for cwd, pythonpath in seen.values():
        assert cwd == str(clusters[0].directory) and not (Path(cwd) / "helpers.py").exists()
        assert str(user_folder) not in pythonpath


FAKE_INSTALLED = """
import fedlab as fl
import fedlab_fake_installed

app = fl.ClientApp()

@app.train()
def train(msg, ctx):
    return msg.reply(msg.content)
"""


def test_a_node_lacking_an_installed_package_says_to_pip_install_it_there(
    user_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clusters: list[LocalCluster]
) -> None:
    from fedlab.deploy.bundle._files import installed_distributions

    site = tmp_path / "site"
    (site / "fedlab_fake_installed").mkdir(parents=True)
    (site / "fedlab_fake_installed" / "__init__.py").write_text("")
    info = site / "fedlab_fake_dist-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fedlab-fake-dist\nVersion: 1.0\n")
    (info / "top_level.txt").write_text("fedlab_fake_installed\n")
    monkeypatch.syspath_prepend(str(site))  # installed here only; the nodes do not have it
    installed_distributions.cache_clear()
    (user_folder / "uses_installed.py").write_text(FAKE_INSTALLED)
    try:
        import uses_installed  # type: ignore[import-not-found]

        replies: list[ClientReplied] = []
        fed = Federation(
            uses_installed.app,
            strategy=FedAvg(fraction_evaluate=0.0, min_train_nodes=1, min_available_nodes=1),
            num_clients=1,
            initial_arrays=[np.zeros(2, np.float32)],
            display="none",
        )
        fed.subscribe(lambda e: replies.append(e) if isinstance(e, ClientReplied) else None)
        # The only client failed, so nothing was learned: the run says so, naming the cause.
        with pytest.raises(FederationError, match="No round aggregated anything.*fedlab_fake_installed"):
            fed.deploy(local=1, rounds=1)
    finally:
        installed_distributions.cache_clear()
        sys.modules.pop("fedlab_fake_installed", None)
    (reply,) = replies
    assert reply.error is not None
    assert reply.error.reason.endswith(
        "Importing 'uses_installed' from the bundle failed with ModuleNotFoundError: No module "
        "named 'fedlab_fake_installed'. 'fedlab_fake_installed' is an installed package "
        "(distribution 'fedlab-fake-dist') on the machine that built the bundle, and this "
        "SuperNode lacks it: pip install it on the SuperNode (pip install fedlab-fake-dist), in "
        "the environment the SuperNode runs in."
    )


# -- a FederatedDataset ------------------------------------------------------------------------


def make_data_app() -> ClientApp:
    # Captured by value; each node reads the partition its partition-path names.
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        from fedlab.datasets import load_partition

        part = load_partition(ctx, "train")
        metrics = MetricRecord({"num-examples": len(part), "label-sum": sum(part["label"])})
        return msg.reply(RecordDict({"arrays": msg.content["arrays"], "metrics": metrics}))

    return app


def test_deploy_local_gives_each_node_its_own_partition_of_a_federated_dataset(
    clusters: list[LocalCluster], caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from fedlab.datasets import FederatedDataset, LinearPartitioner

    # Sizes 1:2:3:4, so that every partition is told apart by its size.
    fds = FederatedDataset.from_sklearn("digits", partitioners={"train": LinearPartitioner(4)})
    expected = {
        pid: {"num-examples": len(part), "label-sum": sum(part["label"])}
        for pid, part in ((i, fds.load_partition(i)) for i in range(3))
    }
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=3,
                      min_available_nodes=3)  # fmt: skip
    fed = Federation(make_data_app(), strategy=strategy, dataset=fds, num_clients=3,
                     initial_arrays=[np.zeros(2, np.float32)], display="none")  # fmt: skip
    replies: list[ClientReplied] = []
    fed.subscribe(lambda e: replies.append(e) if isinstance(e, ClientReplied) else None)
    with caplog.at_level(logging.WARNING, logger="fedlab.deploy"):
        fed.deploy(local=3, rounds=1)
    assert [r.error for r in replies] == [None] * 3
    assert {r.partition_id: dict(r.metrics) for r in replies} == expected
    assert [len(fds.load_partition(i)) for i in range(4)] == [180, 359, 539, 719]
    assert (
        "The dataset has 4 partitions but deploy(local=3) starts 3 SuperNodes, so partition 3 "
        "goes unused; pass local=4 to use every partition." in caplog.messages
    )
    (cluster,) = clusters
    assert not cluster.directory.exists()  # the written partitions went with it


def test_deploy_local_with_more_nodes_than_partitions_is_refused() -> None:
    from fedlab.datasets import FederatedDataset

    fds = FederatedDataset.from_sklearn("iris", partitioners={"train": 2})
    fed = Federation(make_data_app(), strategy=FedAvg(fraction_evaluate=0.0), dataset=fds,
                     initial_arrays=[np.zeros(2, np.float32)], display="none")  # fmt: skip
    with pytest.raises(FederationError) as raised:
        fed.deploy(local=3)
    assert str(raised.value) == (
        "deploy(local=3) starts 3 SuperNodes, but the dataset has only 2 partitions; pass "
        "local=2 or fewer, or partition the dataset into more."
    )


def test_a_relative_partition_path_in_node_configs_means_the_callers_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fedlab.datasets import FederatedDataset, write_partition

    fds = FederatedDataset.from_sklearn("iris", partitioners={"train": 3})
    write_partition(fds, 1, tmp_path / "mine")
    monkeypatch.chdir(tmp_path)  # the nodes run elsewhere, yet "mine" is found here
    strategy = FedAvg(fraction_evaluate=0.0, min_train_nodes=1, min_available_nodes=1)
    fed = Federation(make_data_app(), strategy=strategy, num_clients=1,
                     node_configs=[{"partition-path": "mine"}],
                     initial_arrays=[np.zeros(2, np.float32)], display="none")  # fmt: skip
    replies: list[ClientReplied] = []
    fed.subscribe(lambda e: replies.append(e) if isinstance(e, ClientReplied) else None)
    fed.deploy(local=1, rounds=1)
    (reply,) = replies
    assert reply.error is None and reply.metrics["num-examples"] == len(fds.load_partition(1))

"""DP-SGD clients through Opacus: one accountant per client, kept across rounds in its state."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest
import torch
from opacus.accountants import RDPAccountant
from sklearn.datasets import load_digits

from fedlab import ArrayRecord, ClientApp, Context, Federation, Message, MetricRecord, RecordDict
from fedlab.errors import ConfigurationError
from fedlab.privacy.opacus import make_private
from fedlab.strategy import FedAvg

NOISE, CLIP, BATCH, DELTA = 1.1, 1.0, 32, 1e-5
NUM_CLIENTS = 3


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    # Tiny models: torch's thread pool costs more than it saves on a shared machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.cache
def partition(pid: int) -> torch.utils.data.TensorDataset:
    x, y = load_digits(return_X_y=True)
    x, y = x[pid::NUM_CLIENTS] / 16.0, y[pid::NUM_CLIENTS]
    return torch.utils.data.TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y))


def net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))


def make_app(spent: dict[tuple[int, int], tuple[float, int]]) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid = int(ctx.node_config["partition-id"])
        model = net()
        model.load_state_dict(msg.content["arrays"].to_torch_state_dict())  # type: ignore[union-attr]
        data = partition(pid)
        loader = torch.utils.data.DataLoader(data, batch_size=BATCH)
        private = make_private(
            model, torch.optim.SGD(model.parameters(), lr=0.5), loader,
            noise_multiplier=NOISE, max_grad_norm=CLIP, state=ctx.state,
        )
        for x, y in private.data_loader:
            private.optimizer.zero_grad()
            torch.nn.functional.cross_entropy(private.model(x), y).backward()
            private.optimizer.step()
        private.save_state()
        epsilon = private.epsilon(DELTA)
        spent[(pid, int(msg.content["config"]["server-round"]))] = (epsilon, private.steps)  # type: ignore[index]
        return msg.reply(RecordDict({
            "arrays": ArrayRecord(model.state_dict()),
            "metrics": MetricRecord({"num-examples": len(data), "dp-epsilon": epsilon}),
        }))

    return app


def test_each_clients_epsilon_grows_with_rounds_and_equals_opacus_accountant() -> None:
    torch.manual_seed(0)
    spent: dict[tuple[int, int], tuple[float, int]] = {}
    fed = Federation(
        make_app(spent), FedAvg(min_available_nodes=NUM_CLIENTS), num_clients=NUM_CLIENTS,
        initial_arrays=ArrayRecord(net().state_dict()), seed=0, display="none", backend="inline",
    )
    result = fed.run(rounds=3)
    assert result.rounds_completed == 3
    for pid in range(NUM_CLIENTS):
        epsilons = [spent[(pid, r)][0] for r in (1, 2, 3)]
        assert epsilons[0] > 0 and epsilons[0] < epsilons[1] < epsilons[2]
        # The same steps in one go, with Opacus' own accountant: the same ε.
        epsilon, steps = spent[(pid, 3)]
        sample_rate = 1 / len(torch.utils.data.DataLoader(partition(pid), batch_size=BATCH))
        reference = RDPAccountant()
        reference.history = [(NOISE, sample_rate, steps)]
        assert steps == 3 * spent[(pid, 1)][1]
        assert epsilon == pytest.approx(reference.get_epsilon(delta=DELTA), rel=1e-12)
    # What the server sees: the clients' ε averaged by examples in the round's metrics.
    reported = result.train_metrics_clientapp[3]["dp-epsilon"]
    assert min(spent[(p, 3)][0] for p in range(3)) <= reported <= max(spent[(p, 3)][0] for p in range(3))


def test_a_model_opacus_cannot_handle_is_refused_with_the_fix() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.BatchNorm1d(16), torch.nn.Linear(16, 10))
    loader = torch.utils.data.DataLoader(partition(0), batch_size=BATCH)
    with pytest.raises(ConfigurationError, match=r"BatchNorm.*ModuleValidator.fix"):
        make_private(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, noise_multiplier=1.0, max_grad_norm=1.0)


def test_saving_without_a_state_says_to_pass_ctx_state() -> None:
    model = net()
    loader = torch.utils.data.DataLoader(partition(0), batch_size=BATCH)
    private = make_private(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, noise_multiplier=1.0, max_grad_norm=1.0)
    assert private.epsilon(DELTA) == 0.0
    with pytest.raises(ConfigurationError, match="state=ctx.state"):
        private.save_state()

"""What Federation(...) checks before any client runs: evaluate_fn, config, client evaluation."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

from fedlab import ArrayRecord, ClientApp, Context, Federation, Message, MetricRecord, RecordDict
from fedlab.dashboard import PlainConsole
from fedlab.errors import FederationError, StrategyError
from fedlab.events import RoundStarted
from fedlab.strategy import FedAvg, FedProx, Strategy

ALLOWED = "int, float, str, bytes, bool or a list of one of them"


def counting_app(calls: list[str], *, evaluate: bool = False) -> ClientApp:
    """A ClientApp that records every call it gets; it evaluates only if asked to."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        calls.append("train")
        arrays = msg.content.array_record("arrays")
        return msg.reply(
            RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": 1})})
        )

    if evaluate:

        @app.evaluate()
        def evaluate_(msg: Message, ctx: Context) -> Message:
            calls.append("evaluate")
            return msg.reply(RecordDict({"metrics": MetricRecord({"num-examples": 1, "acc": 0.5})}))

    return app


def federation(calls: list[str], *, evaluate: bool = False, **options: Any) -> Federation:
    settings: dict[str, Any] = {
        "strategy": FedAvg(fraction_evaluate=0.0),
        "num_clients": 3,
        "initial_arrays": [np.zeros(2)],
        "seed": 0,
        "display": "none",
    }
    settings.update(options)
    return Federation(counting_app(calls, evaluate=evaluate), **settings)


def lines_of(fed: Federation, rounds: int = 1) -> list[str]:
    stream = io.StringIO()
    fed.subscribe(PlainConsole(stream))
    fed.run(rounds=rounds)
    return stream.getvalue().splitlines()


# -- evaluate_fn -------------------------------------------------------------------------


def test_an_evaluate_fn_with_flowers_old_three_arguments_is_refused_when_the_federation_is_built() -> (
    None
):
    def evaluate(
        server_round: int, parameters: object, config: object
    ) -> tuple[float, dict[str, float]]:
        return 0.5, {}

    calls: list[str] = []
    with pytest.raises(FederationError) as info:
        federation(calls, evaluate_fn=evaluate)
    assert str(info.value) == (
        "evaluate_fn is called as evaluate_fn(server_round, arrays), but "
        "evaluate(server_round: 'int', parameters: 'object', config: 'object') -> "
        "'tuple[float, dict[str, float]]' cannot be called with those two arguments. Write it "
        "as def evaluate(server_round, arrays): ... and return a MetricRecord, a dict of "
        "metrics such as {'loss': loss, 'accuracy': accuracy}, or None."
    )
    assert calls == []


def test_an_evaluate_fn_that_is_not_a_function_is_refused_when_the_federation_is_built() -> None:
    with pytest.raises(FederationError) as info:
        federation([], evaluate_fn={"loss": 0.5})
    assert str(info.value) == (
        "evaluate_fn must be a function evaluate_fn(server_round, arrays) returning a "
        "MetricRecord, a dict of metrics or None; got dict."
    )


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (
            (0.25, {"accuracy": 0.5}),
            (
                "evaluate_fn returned a tuple in round 0: (0.25, {'accuracy': 0.5}); it must return "
                "a MetricRecord, a dict of metrics or None. For Flower's older (loss, metrics) pair, "
                "return {'loss': loss, **metrics}."
            ),
        ),
        (
            0.25,
            (
                "evaluate_fn returned a float in round 0: 0.25; it must return a MetricRecord, a "
                "dict of metrics or None. Give the number a name: return {'loss': loss}."
            ),
        ),
        (
            {"accuracy": "high"},
            (
                "evaluate_fn returned metrics a MetricRecord cannot hold in round 0: "
                "MetricRecord['accuracy'] got a value of type str; allowed types are int | float "
                "and lists of them."
            ),
        ),
    ],
    ids=["flower-tuple", "float", "str-metric"],
)
def test_an_evaluate_fn_returning_something_else_fails_before_any_client_call_saying_what_to_return(
    returned: object, message: str
) -> None:
    calls: list[str] = []
    fed = federation(calls, evaluate_fn=lambda server_round, arrays: returned)
    with pytest.raises(StrategyError) as info:
        fed.run(rounds=2)
    assert str(info.value) == message
    assert calls == []  # the initial model is evaluated (round 0) before round 1 starts


def test_an_evaluate_fn_may_return_a_dict_with_numpy_and_torch_scalars() -> None:
    import torch

    def evaluate(server_round: int, arrays: ArrayRecord) -> dict[str, Any]:
        return {"loss": torch.tensor(0.5), "accuracy": np.float32(0.75), "round": server_round}

    result = federation([], evaluate_fn=evaluate).run(rounds=1)
    assert result.evaluate_metrics_serverapp == {
        0: {"loss": 0.5, "accuracy": 0.75, "round": 0},
        1: {"loss": 0.5, "accuracy": 0.75, "round": 1},
    }


# -- config ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            np.zeros(3),
            (
                f"config['w'] is an array of shape (3,), and config values are {ALLOWED}: send it "
                "as a list, config={'w': value.tolist()}, or send arrays to the clients through "
                "initial_arrays."
            ),
        ),
        (
            np.zeros((2, 3)),
            (
                f"config['w'] is an array of shape (2, 3), and config values are {ALLOWED}: send "
                "it as a list, config={'w': value.ravel().tolist()}, or send arrays to the clients "
                "through initial_arrays."
            ),
        ),
        (
            {"lr": 0.1, "momentum": 0.9},
            (
                f"config['w'] is a dict, and config values cannot nest ({ALLOWED}): flatten it "
                "into keys of their own, e.g. 'w.lr': ..., one per entry."
            ),
        ),
        (
            None,
            (
                f"config['w'] is None, and config values cannot be None ({ALLOWED}): leave the key "
                "out, or send a value such as '' or 0 that the clients read as unset."
            ),
        ),
        (
            {1, 2},
            (
                "config['w'] is a set, which config cannot hold; allowed types are "
                "int | float | str | bytes | bool and lists of them."
            ),
        ),
    ],
    ids=["array", "2-d-array", "dict", "none", "set"],
)
def test_a_config_value_no_config_record_can_hold_is_refused_by_federation_with_the_fix(
    value: object, message: str
) -> None:
    calls: list[str] = []
    with pytest.raises(FederationError) as info:
        federation(calls, config={"lr": 0.1, "w": value})
    assert str(info.value) == message
    assert calls == []


def test_a_torch_tensor_in_config_is_refused_like_a_numpy_array() -> None:
    import torch

    with pytest.raises(FederationError) as info:
        federation([], config={"w": torch.ones(2)})
    assert str(info.value) == (
        f"config['w'] is an array of shape (2,), and config values are {ALLOWED}: send it as "
        "a list, config={'w': value.tolist()}, or send arrays to the clients through "
        "initial_arrays."
    )


def test_evaluate_config_is_checked_the_same_way_under_its_own_name() -> None:
    with pytest.raises(FederationError, match=r"^evaluate_config\['w'\] is None, and config"):
        federation([], evaluate_config={"w": None})


def test_a_config_key_that_is_not_a_str_is_refused_with_the_str_to_use() -> None:
    with pytest.raises(FederationError) as info:
        federation([], config={3: 1})
    assert str(info.value) == "config keys must be str, got int (3); use '3' instead."


def test_config_scalars_0_d_tensors_and_lists_reach_the_clients_as_python_values() -> None:
    import torch

    seen: list[dict[str, Any]] = []
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        seen.append(dict(msg.content.config_record("config")))
        arrays = msg.content.array_record("arrays")
        return msg.reply(
            RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": 1})})
        )

    config = {"lr": np.float64(0.5), "steps": torch.tensor(3), "w": [1.0, 2.0], "opt.name": "sgd"}
    Federation(
        app, FedAvg(), num_clients=2, initial_arrays=[np.zeros(1)], config=config, display="none"
    ).run(rounds=1)
    assert seen[0] == {"lr": 0.5, "steps": 3, "w": [1.0, 2.0], "opt.name": "sgd", "server-round": 1}
    assert type(seen[0]["steps"]) is int


# -- federated evaluation with a train-only ClientApp -------------------------------------


SKIPPED = "federated evaluation skipped: the ClientApp has no @app.evaluate()"


@pytest.mark.parametrize(
    "strategy", [FedAvg(), FedProx(proximal_mu=0.1)], ids=["FedAvg", "FedProx"]
)
def test_a_train_only_client_app_with_a_default_strategy_runs_and_the_first_line_says_evaluation_was_skipped(
    strategy: Strategy,
) -> None:
    calls: list[str] = []
    fed = federation(calls, strategy=strategy)
    phases: list[str] = []
    fed.subscribe(lambda e: phases.append(e.phase) if isinstance(e, RoundStarted) else None)
    lines = lines_of(fed, rounds=2)
    name = type(strategy).__name__
    assert lines[0] == f"run started: {name}, 2 rounds, 3 nodes; {SKIPPED}"
    assert sum(SKIPPED in line for line in lines) == 1
    assert lines[-1].startswith("run finished: 2 rounds in ")
    assert phases == ["train", "train"] and calls == ["train"] * 6
    assert fed.history is not None and fed.history.run["note"] == SKIPPED


def test_a_strategy_asked_explicitly_to_evaluate_a_train_only_client_app_is_refused_with_the_fix() -> (
    None
):
    with pytest.raises(FederationError) as info:
        federation([], strategy=FedAvg(fraction_evaluate=0.5))
    assert str(info.value) == (
        "FedAvg asks clients to evaluate (fraction_evaluate=0.5) but the ClientApp has no "
        "@app.evaluate() function; register one, or pass fraction_evaluate=0.0 to the strategy."
    )
    with pytest.raises(FederationError, match=r"fraction_evaluate=1\.0\) but the ClientApp"):
        federation([], strategy=FedAvg(fraction_evaluate=1.0))


def test_a_default_strategy_evaluates_on_every_client_of_an_app_that_can_evaluate() -> None:
    calls: list[str] = []
    fed = federation(calls, evaluate=True, strategy=FedAvg())
    lines = lines_of(fed, rounds=1)
    assert lines[0] == "run started: FedAvg, 1 round, 3 nodes"
    assert calls == ["train"] * 3 + ["evaluate"] * 3


def test_a_default_strategy_reused_with_an_app_that_can_evaluate_evaluates_again() -> None:
    strategy = FedAvg()
    first = federation([], strategy=strategy)
    assert first.note == SKIPPED and strategy.fraction_evaluate == 0.0
    calls: list[str] = []
    second = federation(calls, evaluate=True, strategy=strategy)
    second.run(rounds=1)
    assert second.note == "" and strategy.fraction_evaluate == 1.0
    assert calls.count("evaluate") == 3

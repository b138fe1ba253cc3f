"""Training replies are checked against the model they were sent: a bad one fails alone."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from fedlab import ArrayRecord, ClientApp, Context, Federation, Message, MetricRecord, RecordDict
from fedlab.errors import FederationError
from fedlab.events import ClientReplied, Event, ReplyRejected, RoundAggregated
from fedlab.message import ErrorCode
from fedlab.records import Array
from fedlab.simulation import SimulationGrid
from fedlab.strategy import FedAvg, FedBuff, FedMedian, FedNova, QFedAvg, Scaffold, ScaffoldClient

# Client p adds p to w and weighs p + 1. Without partition 1, one round of FedAvg adds
# (0*1 + 2*3 + 3*4) / (1 + 3 + 4) = 18/8 = 2.25 to every element.
WITHOUT_ONE = 18 / 8
FIX = "Return the arrays it received, trained: same names, order, shapes and dtypes."
WEIGHT_FIX = (
    "Report how many examples it trained on, e.g. "
    "MetricRecord({'num-examples': len(train_data), ...})."
)
DIVERGED = (
    "Its training diverged or read bad data: lower the learning rate, clip the gradients "
    "or check the data."
)

Content = dict[str, Any]
Spoil = Callable[[Content], Content]


def _nan(content: Content) -> Content:
    w = content["arrays"]["w"].copy()
    w[0] = np.nan
    return {**content, "arrays": {"w": w}}


def _inf(content: Content) -> Content:
    w = content["arrays"]["w"].copy()
    w[1] = -np.inf
    return {**content, "arrays": {"w": w}}


SPOILS: dict[str, tuple[Spoil, str]] = {
    "wrong shape": (
        lambda c: {**c, "arrays": {"w": np.zeros(3)}},
        f"array 'w' in 'arrays' has shape (3,) where the global model's has (2,). {FIX}",
    ),
    "wrong dtype": (
        lambda c: {**c, "arrays": {"w": c["arrays"]["w"].astype(np.float32)}},
        (
            "array 'w' in 'arrays' has dtype float32 where the global model's has float64, and "
            "dtypes are not converted. Cast it back before replying, e.g. arr.astype('float64')."
        ),
    ),
    "an extra array": (
        lambda c: {**c, "arrays": {**c["arrays"], "extra": np.zeros(2)}},
        f"'arrays' has extra ['extra']: the global model's arrays are ['w']. {FIX}",
    ),
    "no num-examples": (
        lambda c: {**c, "metrics": {"loss": 1.0}},
        f"it reported no 'num-examples' (its metrics: ['loss']). {WEIGHT_FIX}",
    ),
    "a weight of 0": (
        lambda c: {**c, "metrics": {"num-examples": 0}},
        "it reported num-examples=0; a reply's weight must be a positive, finite number. "
        + WEIGHT_FIX,
    ),
    "a NaN": (_nan, f"array 'w' in 'arrays' holds 1 NaN value (of 2). {DIVERGED}"),
    "an infinity": (_inf, f"array 'w' in 'arrays' holds 1 infinite value (of 2). {DIVERGED}"),
    "two ArrayRecords": (
        lambda c: {**c, "more": {"w": np.zeros(2)}},
        (
            "it returned 2 ArrayRecords (['arrays', 'more']) where exactly one is expected, the "
            "model it was sent under 'arrays'. Reply with RecordDict({'arrays': "
            "ArrayRecord(...), 'metrics': MetricRecord(...)})."
        ),
    ),
}


def _app(spoil: Spoil | None = None, bad: frozenset[int] = frozenset({1})) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid = int(ctx.node_config["partition-id"])  # type: ignore[arg-type]
        w = msg.content.array_record("arrays")["w"].numpy() + pid
        content: Content = {"arrays": {"w": w}, "metrics": {"num-examples": pid + 1}}
        if spoil is not None and pid in bad:
            content = spoil(content)
        records = RecordDict()
        for key, value in content.items():
            records[key] = MetricRecord(value) if key == "metrics" else ArrayRecord(value)
        return msg.reply(records)

    return app


def _federation(app: ClientApp, events: list[Event], **strategy: Any) -> Federation:
    fed = Federation(
        app,
        strategy=FedAvg(fraction_evaluate=0.0, min_train_nodes=2, **strategy),
        num_clients=4,
        initial_arrays=ArrayRecord({"w": np.zeros(2)}),
        seed=0,
        display="none",
    )
    fed.subscribe(events.append)
    return fed


@pytest.mark.parametrize("kind", list(SPOILS))
def test_one_bad_reply_fails_that_client_and_the_round_averages_the_others(kind: str) -> None:
    spoil, problem = SPOILS[kind]
    events: list[Event] = []

    result = _federation(_app(spoil), events).run(rounds=1)

    np.testing.assert_array_equal(result.arrays["w"].numpy(), [WITHOUT_ONE, WITHOUT_ONE])
    assert result.history is not None
    (failure,) = result.history.failures()
    node = failure["node_id"]
    assert failure["partition_id"] == 1
    assert failure["error_code"] == ErrorCode.REPLY_REJECTED
    assert failure["error_reason"] == f"Reply of node {node} refused: {problem}"
    (rejected,) = [e for e in events if isinstance(e, ReplyRejected)]
    assert (rejected.node_id, rejected.round, rejected.phase) == (node, 1, "train")
    assert rejected.error.reason == failure["error_reason"]
    (aggregated,) = [e for e in events if isinstance(e, RoundAggregated)]
    assert (aggregated.num_replies, aggregated.num_failures, aggregated.aggregated) == (3, 1, True)
    # One row per reply: the refused one is marked failed, not added a second time.
    assert len(result.history.clients) == 4
    head = result.history.summary().splitlines()[0]
    assert re.fullmatch(r"run \d+ \(FedAvg\): 1/1 rounds in \S+, 1 client failure", head)


def test_the_console_counts_a_refused_reply_as_failed(capsys: pytest.CaptureFixture[str]) -> None:
    fed = _federation(_app(SPOILS["wrong shape"][0]), [])
    fed.display = "plain"

    fed.run(rounds=1)

    lines = capsys.readouterr().out.splitlines()
    refusal = (
        r"client \d+ \(node \d+\) failed in round 1 \(train\): Reply of node \d+ refused: array 'w' in "
        r"'arrays' has shape \(3,\) where the global model's has \(2,\)\. "
    )
    assert re.fullmatch(refusal + re.escape(FIX), lines[1])
    assert re.fullmatch(r"round 1/1  clients 3/4 \(1 failed\)  train num-examples=8  \S+", lines[2])
    assert re.fullmatch(r"run finished: 1 round in \S+, 1 client failure", lines[3])


@pytest.mark.parametrize("kind", ["wrong shape", "two ArrayRecords", "a NaN"])
def test_when_every_reply_is_bad_the_run_fails_and_the_model_is_left_unchanged(kind: str) -> None:
    seen: list[list[float]] = []
    fed = Federation(
        _app(SPOILS[kind][0], bad=frozenset(range(4))),
        strategy=FedAvg(fraction_evaluate=0.0),
        num_clients=4,
        initial_arrays=ArrayRecord({"w": np.zeros(2)}),
        evaluate_fn=lambda rnd, arrays: seen.append(arrays["w"].numpy().tolist()),
        seed=0,
        display="none",
    )

    with pytest.raises(FederationError) as raised:
        fed.run(rounds=2)

    assert seen == [[0.0, 0.0]] * 3  # before round 1 and after each round
    assert fed.history is not None
    first = fed.history.failures()[0]
    node, client = first["node_id"], first["partition_id"]
    assert str(raised.value) == (
        "No round aggregated anything: rounds 1, 2 kept the global arrays unchanged, with 8 "
        f"client failures. First failure: client {client} (node {node}) in round 1 (train): "
        f"Reply of node {node} refused: {SPOILS[kind][1].rstrip('.')}. Fix what the failures "
        "say (History.failures() lists every one); the model was not trained."
    )


def _instruction(arrays: ArrayRecord) -> Message:
    content = RecordDict({"arrays": arrays})
    return Message(content, dst_node_id=5, message_type="train", group_id="1")


def _reply(instruction: Message, arrays: ArrayRecord, weight: float = 10) -> Message:
    metrics = MetricRecord({"num-examples": weight})
    return instruction.reply(RecordDict({"arrays": arrays, "metrics": metrics}))


def test_arrays_in_another_order_are_refused_with_both_orders_named() -> None:
    sent = ArrayRecord({"weight": np.zeros(2), "bias": np.zeros(1)})
    instruction = _instruction(sent)
    swapped = ArrayRecord({"bias": np.zeros(1), "weight": np.zeros(2)})

    reason = FedAvg().check_train_reply(instruction, _reply(instruction, swapped))

    assert reason == (
        "Reply of node 5 refused: the arrays of 'arrays' come in the order ['bias', 'weight'], "
        f"the global model's in ['weight', 'bias']. {FIX}"
    )


def test_a_bfloat16_nan_is_found_and_huge_finite_values_are_accepted() -> None:
    nan_bits = np.array([0x3F80, 0x7FC0, 0xFF80], dtype="<u2")  # 1.0, NaN, -inf
    sent = ArrayRecord({"b": Array("bfloat16", (3,), np.zeros(3, "<u2").tobytes())})
    instruction = _instruction(sent)
    spoiled = ArrayRecord({"b": Array("bfloat16", (3,), nan_bits.tobytes())})
    reason = FedAvg().check_train_reply(instruction, _reply(instruction, spoiled))
    assert reason == (
        "Reply of node 5 refused: array 'b' in 'arrays' holds 1 NaN value and 1 infinite value "
        f"(of 3). {DIVERGED}"
    )
    # Values near the largest float64 are finite: nothing to refuse.
    huge = ArrayRecord({"w": np.full(4, 1e308)})
    instruction = _instruction(huge)
    assert FedAvg().check_train_reply(instruction, _reply(instruction, huge)) is None


def test_a_weight_that_is_not_finite_is_refused() -> None:
    instruction = _instruction(ArrayRecord({"w": np.zeros(2)}))
    reply = _reply(instruction, ArrayRecord({"w": np.zeros(2)}), weight=float("inf"))
    assert FedAvg().check_train_reply(instruction, reply) == (
        "Reply of node 5 refused: it reported num-examples=inf; a reply's weight must be a "
        f"positive, finite number. {WEIGHT_FIX}"
    )


def test_robust_rules_need_no_weight_but_still_refuse_a_wrong_shape() -> None:
    instruction = _instruction(ArrayRecord({"w": np.zeros(2)}))
    no_weight = instruction.reply(RecordDict({"arrays": ArrayRecord({"w": np.ones(2)})}))
    wrong = instruction.reply(RecordDict({"arrays": ArrayRecord({"w": np.ones(3)})}))
    assert FedMedian().check_train_reply(instruction, no_weight) is None
    assert FedMedian().check_train_reply(instruction, wrong) == (
        f"Reply of node 5 refused: array 'w' in 'arrays' has shape (3,) where the global "
        f"model's has (2,). {FIX}"
    )


def test_fednova_and_qfedavg_refuse_a_reply_without_their_metric_instead_of_aborting() -> None:
    instruction = _instruction(ArrayRecord({"w": np.zeros(2)}))
    reply = _reply(instruction, ArrayRecord({"w": np.ones(2)}))
    assert FedNova().check_train_reply(instruction, reply) == (
        "Reply of node 5 refused: FedNova needs each client's number of local steps under "
        "'local-steps' (> 0), but node 5 reported None (its metrics: ['num-examples']); report "
        "MetricRecord({'local-steps': steps, 'num-examples': n, ...})."
    )
    nan_loss = instruction.reply(
        RecordDict(
            {
                "arrays": ArrayRecord({"w": np.ones(2)}),
                "metrics": MetricRecord({"global-model-loss": float("nan")}),
            }
        )
    )
    assert QFedAvg(client_learning_rate=0.1).check_train_reply(instruction, nan_loss) == (
        "Reply of node 5 refused: it reported global-model-loss=nan; QFedAvg needs a finite "
        "loss of the received model."
    )


def _scaffold_app(bad_delta: bool) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid = int(ctx.node_config["partition-id"])  # type: ignore[arg-type]
        helper = ScaffoldClient(msg, ctx)
        w = msg.content.array_record("arrays")["w"].numpy() + pid
        content = helper.reply_content(ArrayRecord({"w": w}), num_steps=1, learning_rate=1.0)
        if bad_delta and pid == 1:
            content["scaffold-control-delta"] = ArrayRecord({"w": np.zeros(5)})
        return msg.reply(content)

    return app


def test_scaffold_checks_the_model_and_its_control_delta_and_aggregates_the_good_replies() -> None:
    events: list[Event] = []
    results = {}
    for bad in (False, True):
        grid = SimulationGrid(_scaffold_app(bad), 4, seed=0)
        grid.events.subscribe(events.append)
        strategy = Scaffold(min_train_nodes=2, fraction_evaluate=0.0)
        results[bad] = strategy.start(grid, ArrayRecord({"w": np.zeros(2)}), num_rounds=1, seed=0)
    # An unweighted mean of the updates: partitions 0..3 add 1.5, without partition 1 5/3.
    np.testing.assert_allclose(results[False].arrays["w"].numpy(), [1.5, 1.5])
    np.testing.assert_allclose(results[True].arrays["w"].numpy(), [5 / 3, 5 / 3])
    (rejected,) = [e for e in events if isinstance(e, ReplyRejected)]
    assert rejected.error.reason.endswith(
        "refused: array 'w' in 'scaffold-control-delta' has shape (5,) where the global "
        f"model's has (2,). {FIX}"
    )


def test_fedbuff_refuses_a_nan_update_and_keeps_training_with_the_others() -> None:
    events: list[Event] = []
    grid = SimulationGrid(_app(_nan, bad=frozenset({1})), 3, seed=0)
    grid.events.subscribe(events.append)

    strategy = FedBuff(buffer_size=2)
    result = strategy.start(grid, ArrayRecord({"w": np.zeros(2)}), num_rounds=2, seed=0)

    assert result.rounds_completed == 2
    assert np.isfinite(result.arrays["w"].numpy()).all()
    rejected = [e for e in events if isinstance(e, ReplyRejected)]
    replied = [e for e in events if isinstance(e, ClientReplied)]
    bad_node = next(e.node_id for e in replied if e.partition_id == 1)
    assert rejected and {e.node_id for e in rejected} == {bad_node}
    assert all("holds 1 NaN value (of 2)" in e.error.reason for e in rejected)

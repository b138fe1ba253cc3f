"""Homomorphic FedAvg: the decrypted aggregate is FedAvg's, and the server cannot decrypt.

CKKS parameters (the defaults of ``ckks_keys``): poly modulus degree 8192, coefficient
moduli of 60, 40, 40 and 60 bits, global scale 2**40. Measured largest absolute error of
the decrypted two-round aggregate against plaintext FedAvg, for float32 values of order 1
to 10: 3.8e-6 (about 8 float32 ulps: round 2 starts from round 1's decrypted model); for
one round of a float64 mean, bench/ckks.py measures 3.9e-7. The test holds it to 1e-5.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedlab import (
    ArrayRecord,
    ClientApp,
    ConfigRecord,
    Context,
    Federation,
    Message,
    MetricRecord,
    RecordDict,
)
from fedlab.errors import AggregationError, ConfigurationError, FederationError
from fedlab.mods.ckks import (
    CkksKeys,
    CkksMod,
    ckks_keys,
    decrypt_arrays,
    encrypt_arrays,
    load_context,
    slots_of,
)
from fedlab.privacy.ckks import CkksFedAvg
from fedlab.strategy import FedAvg

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def keys() -> CkksKeys:
    return ckks_keys()


def initial() -> ArrayRecord:
    rng = np.random.default_rng(0)
    # 4,097 + 3 values: two ciphertexts, the second nearly empty; an int array comes back exact.
    return ArrayRecord({
        "w": rng.normal(size=(4097,)).astype(np.float32),
        "b": np.array([0.5, -1.0, 2.0], np.float64),
        "steps": np.array([3], np.int64),
    })


def make_app(mods: list[object]) -> ClientApp:
    app = ClientApp(mods=mods)  # type: ignore[arg-type]

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid = int(ctx.node_config["partition-id"])
        arrays = msg.content["arrays"].to_numpy()  # type: ignore[union-attr]
        rng = np.random.default_rng(pid)
        trained = {
            "w": (arrays[0] + rng.normal(scale=3.0, size=arrays[0].shape)).astype(np.float32),
            "b": arrays[1] * (pid + 1),
            "steps": arrays[2] + 1,
        }
        metrics = MetricRecord({"num-examples": 10 * (pid + 1), "loss": float(pid)})
        return msg.reply(RecordDict({"arrays": ArrayRecord(trained), "metrics": metrics}))

    @app.evaluate()
    def evaluate(msg: Message, ctx: Context) -> Message:
        w = msg.content["arrays"].to_numpy()[0]  # type: ignore[union-attr]
        return msg.reply(RecordDict({"metrics": MetricRecord({"num-examples": 1, "mean-w": float(w.mean())})}))

    return app


def federation(app: ClientApp, strategy: FedAvg, backend: str = "inline") -> Federation:
    return Federation(
        app, strategy, num_clients=3, initial_arrays=initial(), seed=3, display="none", backend=backend
    )


@pytest.mark.parametrize("backend", ["inline", "threads"])
def test_decrypted_aggregate_equals_plaintext_fedavg_within_ckks_precision(keys: CkksKeys, backend: str) -> None:
    plain = federation(make_app([]), FedAvg(min_available_nodes=3)).run(rounds=2)
    strategy = CkksFedAvg(keys.public, min_available_nodes=3)
    encrypted = federation(make_app([CkksMod(keys.secret)]), strategy, backend).run(rounds=2)

    assert encrypted.rounds_completed == 2
    assert strategy.encrypted_aggregate is not None
    decrypted = decrypt_arrays(strategy.encrypted_aggregate, load_context(keys.secret))
    expected = plain.arrays.to_numpy()
    got = decrypted.to_numpy()
    errors = [float(np.max(np.abs(g.astype(np.float64) - e.astype(np.float64)))) for g, e in zip(got, expected)]
    print(f"max abs error per array (w, b, steps): {errors}")
    assert max(errors) < TOLERANCE
    assert [a.dtype for a in got] == [a.dtype for a in expected]
    assert got[2].tolist() == expected[2].tolist() == [5]
    # Metrics stay in the clear and are FedAvg's.
    assert encrypted.train_metrics_clientapp[2] == plain.train_metrics_clientapp[2]
    # Evaluation instructions carry the encrypted aggregate too; the clients evaluate it.
    for rnd in (1, 2):
        assert encrypted.evaluate_metrics_clientapp[rnd]["mean-w"] == pytest.approx(
            plain.evaluate_metrics_clientapp[rnd]["mean-w"], abs=TOLERANCE
        )


def test_a_resumed_run_continues_from_the_encrypted_aggregate(keys: CkksKeys, tmp_path: Path) -> None:
    plain = federation(make_app([]), FedAvg(min_available_nodes=3)).run(rounds=2)
    options: dict[str, Any] = {
        "num_clients": 3, "initial_arrays": initial(), "seed": 3, "display": "none", "checkpoint_dir": tmp_path,
    }
    Federation(make_app([CkksMod(keys.secret)]), CkksFedAvg(keys.public, min_available_nodes=3), **options).run(rounds=1)
    strategy = CkksFedAvg(keys.public, min_available_nodes=3)
    resumed = Federation(make_app([CkksMod(keys.secret)]), strategy, **options).resume(rounds=2)
    assert resumed.rounds_completed == 2 and strategy.encrypted_aggregate is not None
    decrypted = decrypt_arrays(strategy.encrypted_aggregate, load_context(keys.secret)).to_numpy()
    for got, expected in zip(decrypted, plain.arrays.to_numpy(), strict=True):
        assert np.max(np.abs(got.astype(np.float64) - expected)) < TOLERANCE


def test_the_server_never_sees_a_plaintext_update(keys: CkksKeys) -> None:
    seen: list[RecordDict] = []

    class Recording(CkksFedAvg):
        def check_train_reply(self, instruction: Message, reply: Message) -> str | None:
            seen.append(reply.content)
            return super().check_train_reply(instruction, reply)

    strategy = Recording(keys.public, min_available_nodes=3)
    result = federation(make_app([CkksMod(keys.secret)]), strategy).run(rounds=2)
    assert len(seen) == 6 and all(not content.array_records for content in seen)
    assert all(isinstance(c["ckks"]["ciphertexts"][0], bytes) for c in seen)  # type: ignore[index]
    # The server's model is still the one it started from: it could not decrypt the others.
    assert result.arrays.to_numpy()[0].tolist() == initial().to_numpy()[0].tolist()


def test_the_server_side_context_holds_no_secret_key_and_cannot_decrypt(keys: CkksKeys) -> None:
    strategy = CkksFedAvg(keys.public)
    assert strategy.holds_secret_key is False
    public = load_context(keys.public)
    assert public.is_private() is False
    import tenseal as ts

    ciphertext = ts.ckks_vector(public, [1.0, 2.0])  # encrypting needs only the public key
    with pytest.raises(ValueError, match="secret"):
        ciphertext.decrypt()
    assert "secret=" not in repr(keys)  # printing the keys shows no key


def test_a_malformed_aggregate_is_refused_with_an_aggregation_error(keys: CkksKeys) -> None:
    secret = load_context(keys.secret)
    good = encrypt_arrays(initial(), secret, slots_of(secret))
    assert decrypt_arrays(good, secret).to_numpy()[2].tolist() == [3]
    for change, match in (
        ({"total-weight": 0.0}, "positive"),
        ({"layout": "[[1, 2]]"}, "layout"),
        ({"ciphertexts": list(good["ciphertexts"])[:1]}, "layout describes"),  # type: ignore[call-overload]
        ({"ciphertexts": [b"not a ciphertext"]}, "do not decrypt"),
    ):
        with pytest.raises(AggregationError, match=match):
            decrypt_arrays(ConfigRecord({**good, **change}), secret)


def test_the_server_refuses_a_context_with_the_secret_key(keys: CkksKeys) -> None:
    with pytest.raises(ConfigurationError, match="public one"):
        CkksFedAvg(keys.secret)


def test_a_client_without_the_mod_is_refused_with_a_fix(keys: CkksKeys) -> None:
    strategy = CkksFedAvg(keys.public, min_available_nodes=3, min_train_nodes=3)
    with pytest.raises(FederationError, match=r"holds no 'ckks' ConfigRecord.*Add CkksMod"):
        federation(make_app([]), strategy).run(rounds=1)
    assert strategy.encrypted_aggregate is None


def test_importing_fedlab_and_these_modules_loads_neither_tenseal_nor_opacus() -> None:
    code = (
        "import sys, fedlab, fedlab.mods.ckks, fedlab.privacy.ckks, fedlab.privacy.opacus\n"
        "fedlab.Federation\n"
        "print([m for m in ('tenseal', 'opacus', 'dp_accounting', 'torch') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

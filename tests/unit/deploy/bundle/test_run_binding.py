"""A signed bundle is bound to one run: its config, a nonce, an expiry."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedlab.deploy.bundle import (
    build_bundle,
    check_new_run,
    check_run_binding,
    load_bundle,
    load_run_bundle,
)
from fedlab.errors import BundleError, DeployError

KEY = Ed25519PrivateKey.generate()
CONFIG: dict[str, Any] = {"data-path": "/data/mine", "lr": 0.1}


def config_sha256(config: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def signed(config: dict[str, Any] | None = None, valid_for: float = 7 * 86400.0) -> bytes:
    return build_bundle(
        "fedlab.demo:client", run_config=config or CONFIG, signing_key=KEY, valid_for=valid_for
    )


def test_a_signed_bundle_carries_its_runs_config_hash_a_fresh_nonce_and_an_expiry() -> None:
    before = time.time()
    first, second = load_bundle(signed()).manifest, load_bundle(signed()).manifest
    assert first["run"]["config_sha256"] == config_sha256(CONFIG)
    assert first["run"]["nonce"] != second["run"]["nonce"] and len(first["run"]["nonce"]) == 32
    assert before + 7 * 86400 <= first["run"]["expires_at"] <= time.time() + 7 * 86400


def test_the_config_hash_is_of_canonical_json_and_ignores_key_order() -> None:
    manifest = load_bundle(signed({"b": 1, "a": "x"})).manifest
    assert manifest["run"]["config_sha256"] == hashlib.sha256(b'{"a":"x","b":1}').hexdigest()


def test_an_unsigned_bundle_carries_no_binding() -> None:
    assert "run" not in load_bundle(build_bundle("fedlab.demo:client", run_config=CONFIG)).manifest


def test_a_bundle_replayed_with_another_config_is_refused() -> None:
    manifest = load_bundle(signed()).manifest
    check_run_binding(manifest, dict(CONFIG), run_id=1)
    with pytest.raises(BundleError, match="not the config the bundle was signed for"):
        check_run_binding(manifest, {**CONFIG, "data-path": "/etc"}, run_id=1)


def test_an_expired_binding_is_refused() -> None:
    manifest = load_bundle(signed(valid_for=60)).manifest
    check_run_binding(manifest, CONFIG, run_id=1, now=time.time() + 30)
    with pytest.raises(BundleError, match="expired"):
        check_run_binding(manifest, CONFIG, run_id=1, now=time.time() + 120)


def test_a_nonce_seen_for_another_run_is_refused_and_the_same_run_may_load_again() -> None:
    manifest = load_bundle(signed()).manifest
    seen: dict[str, int] = {}
    check_run_binding(manifest, CONFIG, run_id=1, seen_nonces=seen)
    check_run_binding(manifest, CONFIG, run_id=1, seen_nonces=seen)
    with pytest.raises(BundleError, match="signed for run 1"):
        check_run_binding(manifest, CONFIG, run_id=2, seen_nonces=seen)


def test_a_signed_bundle_without_binding_or_with_a_malformed_one_is_refused() -> None:
    manifest = dict(load_bundle(signed()).manifest)
    with pytest.raises(BundleError, match="no 'run' binding"):
        check_run_binding({k: v for k, v in manifest.items() if k != "run"}, CONFIG, run_id=1)
    with pytest.raises(BundleError, match="malformed"):
        check_run_binding({**manifest, "run": {"nonce": "x"}}, CONFIG, run_id=1)


def test_a_process_without_trusted_keys_runs_nothing_unless_allowed_unsigned() -> None:
    unsigned = build_bundle("fedlab.demo:client", run_config=CONFIG)
    with pytest.raises(BundleError, match="no trusted keys"):
        load_run_bundle(
            unsigned, run_id=1, run_config=CONFIG, trusted_keys=None, allow_unsigned=False
        )
    assert load_run_bundle(
        unsigned, run_id=1, run_config=CONFIG, trusted_keys=None, allow_unsigned=True
    )
    with pytest.raises(BundleError, match="not signed"):
        load_run_bundle(
            unsigned,
            run_id=1,
            run_config=CONFIG,
            trusted_keys=[KEY.public_key()],
            allow_unsigned=False,
        )


def test_loading_for_a_run_checks_the_binding_even_when_unsigned_bundles_are_allowed() -> None:
    data = signed()
    with pytest.raises(BundleError, match="not the config"):
        load_run_bundle(
            data, run_id=1, run_config={"data-path": "/etc"}, trusted_keys=None, allow_unsigned=True
        )
    bundle = load_run_bundle(
        data, run_id=1, run_config=CONFIG, trusted_keys=[KEY.public_key()], allow_unsigned=False
    )
    assert bundle.signer is not None


def test_create_run_refuses_another_config_and_a_bundle_or_nonce_used_before() -> None:
    data = signed()
    digest = load_bundle(data).digest
    nonces: set[str] = set()
    with pytest.raises(DeployError, match="not the config"):
        check_new_run(data, {"data-path": "/etc"}, used_digests=set(), used_nonces=nonces)
    check_new_run(data, CONFIG, used_digests=set(), used_nonces=nonces)
    assert nonces == {load_bundle(data).manifest["run"]["nonce"]}
    with pytest.raises(DeployError, match="already ran"):
        check_new_run(data, CONFIG, used_digests={digest})
    with pytest.raises(DeployError, match="nonce"):
        check_new_run(data, CONFIG, used_digests=set(), used_nonces=nonces)


def test_create_run_lets_an_unbound_bundle_through_for_the_nodes_to_judge() -> None:
    unsigned = build_bundle("fedlab.demo:client")
    digest = load_bundle(unsigned).digest
    check_new_run(unsigned, {"anything": 1}, used_digests={digest}, used_nonces=set())
    with pytest.raises(DeployError, match="not a fedlab app bundle|not a valid zip"):
        check_new_run(b"junk", {}, used_digests=set())

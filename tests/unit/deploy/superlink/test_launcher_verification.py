"""The SuperLink's ServerApp launcher runs only bundles signed for the run (or, if told, unsigned ones)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedlab.deploy.bundle import build_bundle
from fedlab.deploy.superlink.launcher import ServerAppLauncher
from fedlab.deploy.superlink.state import LinkState

KEY = Ed25519PrivateKey.generate()
APP = "fedlab.demo:client"


@pytest.fixture
def state() -> Iterator[LinkState]:
    link = LinkState()
    yield link
    link.close()


def refused_run(
    state: LinkState, launcher: ServerAppLauncher, bundle: bytes, config: dict[str, object]
) -> str:
    """Launch a run of ``bundle``; return its error (the launcher must not start a process)."""
    digest = state.objects.put(bundle)
    run_id = state.runs.create(
        config, attached=False, bundle_digest=digest, bundle_size=len(bundle)
    )  # type: ignore[arg-type]
    launcher.launch(run_id)
    assert launcher.running() == []
    run = state.runs.require(run_id)
    assert run.status == "failed", run
    return run.error


def test_an_unsigned_bundle_never_runs_on_a_launcher_with_trusted_keys(state: LinkState) -> None:
    launcher = ServerAppLauncher(state, "127.0.0.1:1", trusted_keys=[KEY.public_key()])
    error = refused_run(state, launcher, build_bundle(APP), {})
    assert "refused to run the bundle" in error and "not signed" in error


def test_a_launcher_without_trusted_keys_refuses_every_bundle_unless_allowed(
    state: LinkState,
) -> None:
    error = refused_run(
        state, ServerAppLauncher(state, "127.0.0.1:1"), build_bundle(APP, signing_key=KEY), {}
    )
    assert "--trusted-key" in error and "--insecure-allow-unsigned" in error


def test_a_signed_bundle_replayed_with_another_config_is_refused_by_the_launcher(
    state: LinkState,
) -> None:
    launcher = ServerAppLauncher(state, "127.0.0.1:1", trusted_keys=[KEY.public_key()])
    bundle = build_bundle(APP, run_config={"data-path": "/data"}, signing_key=KEY)
    error = refused_run(state, launcher, bundle, {"data-path": "/etc"})
    assert "not the config the bundle was signed for" in error
    assert launcher.check(state.runs.create({"data-path": "/data"}, attached=False,
                                            bundle_digest=state.objects.put(bundle))) is None  # fmt: skip
    # The same bundle for yet another run: its nonce was seen for the run before.
    again = state.runs.create(
        {"data-path": "/data"}, attached=False, bundle_digest=state.objects.put(bundle)
    )
    assert "signed for run" in (launcher.check(again) or "")

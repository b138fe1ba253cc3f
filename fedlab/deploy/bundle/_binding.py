"""A signed bundle's binding to the run it was made for: its config, a nonce, an expiry.

The signature over ``manifest.json`` covers the code; the ``"run"`` entry of the manifest
makes it cover the run too::

    "run": {"config_sha256": "<hex>", "nonce": "<32 hex>", "expires_at": <unix seconds>}

``config_sha256`` is the SHA-256 of the run config's canonical JSON (sorted keys, no
spaces). Whoever runs the bundle checks that the run's config hashes to it, that it has
not expired, and that its nonce was not used by another run: a signed bundle taken from
one run cannot be replayed into another, nor with another config (``data-path=/etc``).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Container, Mapping, MutableMapping, MutableSet, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fedlab.deploy.bundle._format import read_bundle, sha256_hex
from fedlab.errors import BundleError, DeployError

__all__ = [
    "DEFAULT_VALID_FOR",
    "check_new_run",
    "check_run_binding",
    "config_sha256",
    "is_bound",
    "make_binding",
    "refuse_without_trust",
]

#: How long a bundle signed for a run may be started, by default: 7 days.
DEFAULT_VALID_FOR = 7 * 24 * 3600.0
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")


def config_sha256(run_config: Mapping[str, Any] | None) -> str:
    """Return the SHA-256 (hex) of the canonical JSON of ``run_config``.

    Examples
    --------
    >>> config_sha256({"b": 1, "a": "x"}) == config_sha256({"a": "x", "b": 1})
    True
    """
    text = json.dumps(dict(run_config or {}), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def make_binding(
    run_config: Mapping[str, Any] | None,
    *,
    valid_for: float = DEFAULT_VALID_FOR,
    now: float | None = None,
) -> dict[str, Any]:
    """Return a fresh ``"run"`` manifest entry for a run with ``run_config``."""
    if not valid_for > 0:
        raise BundleError(f"valid_for must be a positive number of seconds, got {valid_for!r}.")
    issued = time.time() if now is None else now
    return {
        "config_sha256": config_sha256(run_config),
        "nonce": secrets.token_hex(16),
        "expires_at": float(issued + valid_for),
    }


def check_run_binding(
    manifest: Mapping[str, Any],
    run_config: Mapping[str, Any] | None,
    *,
    run_id: int,
    now: float | None = None,
    seen_nonces: MutableMapping[str, int] | None = None,
) -> None:
    """Refuse a bundle whose ``"run"`` binding does not fit run ``run_id``.

    Parameters
    ----------
    manifest
        The bundle's manifest (:attr:`Bundle.manifest`), already checked against its
        signature.
    run_config
        The config the run was created with (``RunInfo.run_config``).
    run_id
        The run the bundle is about to run for.
    now
        The current time (unix seconds); defaults to the clock.
    seen_nonces
        Nonces already seen, to the run they were seen for; this run's nonce is added.

    Raises
    ------
    BundleError
        If the manifest has no binding, the config hash differs, the binding expired, or
        its nonce was seen for another run; the message says which.
    """
    binding = _binding(manifest)
    if binding is None:
        raise BundleError(
            "The bundle is signed but not for a run (its manifest has no 'run' binding), so it "
            "could be replayed into any run and is refused; build it with "
            "build_bundle(..., signing_key=key, run_config=...) for this run."
        )
    if config_sha256(run_config) != binding["config_sha256"]:
        raise BundleError(
            f"Run {run_id}'s config {dict(run_config or {})!r} is not the config the bundle was "
            "signed for, so it is refused (a signed bundle replayed with another config); sign "
            "a bundle for this run config."
        )
    current = time.time() if now is None else now
    if current > binding["expires_at"]:
        raise BundleError(
            f"The bundle's signature for its run expired at {binding['expires_at']:.0f} (unix "
            f"time; now {current:.0f}), so it is refused; sign a fresh bundle for the run."
        )
    if seen_nonces is not None:
        earlier = seen_nonces.setdefault(binding["nonce"], run_id)
        if earlier != run_id:
            raise BundleError(
                f"The bundle was signed for run {earlier} (nonce {binding['nonce']}) and is "
                f"refused for run {run_id}: a signed bundle runs for one run only; sign a new "
                "bundle for each run."
            )


def refuse_without_trust(
    trusted_keys: Sequence[Ed25519PublicKey] | None, allow_unsigned: bool
) -> None:
    """Refuse to run anything in a process that has no trusted keys and was not told otherwise."""
    if not trusted_keys and not allow_unsigned:
        raise BundleError(
            "This process has no trusted keys, so it runs no bundle; give it the signer's "
            "public key (--trusted-key FILE), or --insecure-allow-unsigned on a trusted network."
        )


def is_bound(manifest: Mapping[str, Any]) -> bool:
    """True if the manifest carries a (well-formed) run binding."""
    return _binding(manifest) is not None


def check_new_run(
    bundle: bytes,
    run_config: Mapping[str, Any] | None,
    *,
    used_digests: Container[str],
    used_nonces: MutableSet[str] | None = None,
    now: float | None = None,
) -> None:
    """Refuse to create a run with a bundle signed for another run (for ``CreateRun``).

    A bundle bound to a run (signed with ``run_config``) must be bound to this config,
    unexpired, and neither its digest nor its nonce may belong to an earlier run. A bundle
    without a binding passes: the SuperNodes and the launcher decide whether they run it.

    Parameters
    ----------
    bundle
        The bundle's bytes.
    run_config
        The config the run is being created with.
    used_digests
        Digests of the bundles of earlier runs.
    used_nonces
        Nonces of earlier runs' bundles; this bundle's nonce is added once it passes.
    now
        The current time (unix seconds); defaults to the clock.

    Raises
    ------
    DeployError
        If the bundle is damaged or bound to another run; the message says why.
    """
    try:
        manifest, _, _ = read_bundle(bundle, None)
        digest = sha256_hex(bytes(bundle))
        binding = _binding(manifest)
        if binding is None:
            return
        if digest in used_digests:
            raise BundleError(
                f"The bundle {digest[:12]} already ran as an earlier run; a bundle signed "
                "for a run cannot start another one (sign a new bundle for each run)."
            )
        if used_nonces is not None and binding["nonce"] in used_nonces:
            raise BundleError(
                f"The bundle's nonce {binding['nonce']} was used by an earlier run; a bundle "
                "signed for a run cannot start another one (sign a new bundle for each run)."
            )
        check_run_binding(manifest, run_config, run_id=0, now=now)
    except BundleError as err:
        raise DeployError(f"The run was refused: {err}") from None
    if used_nonces is not None:
        used_nonces.add(binding["nonce"])


def _binding(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    binding = manifest.get("run")
    if binding is None:
        return None
    if not (
        isinstance(binding, Mapping)
        and isinstance(binding.get("config_sha256"), str)
        and _HEX64.fullmatch(binding["config_sha256"])
        and isinstance(binding.get("nonce"), str)
        and _HEX32.fullmatch(binding["nonce"])
        and isinstance(binding.get("expires_at"), int | float)
        and not isinstance(binding.get("expires_at"), bool)
    ):
        raise BundleError(f"The bundle's run binding {binding!r} is malformed; it is refused.")
    return dict(binding)

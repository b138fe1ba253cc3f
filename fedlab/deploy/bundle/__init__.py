"""App bundles: how a run's code travels from the user to the SuperNodes.

A bundle is the code of a ClientApp (and optionally a ServerApp), a manifest that lists
every file with its SHA-256, and an optional Ed25519 signature over that manifest. A
SuperNode checks the hashes always, and with ``trusted_keys`` runs only code signed by a
key it trusts. Nothing in a bundle is pickled: it holds source text and JSON only.

Where the code comes from
-------------------------
* **An import path** ``"package.module:attr"`` (or an app object bound at the top level of
  an importable module): the source files of the module's top-level package are shipped
  (``.py`` plus small text files such as ``.json``/``.toml``/``.yaml``; never data).
  fedlab itself and the standard library are never shipped; every node has them.
* **The user's own modules the shipped code imports** (``import helpers``, with
  ``helpers.py`` beside the app's module, outside site-packages and no installed
  distribution's): shipped too, transitively. Installed packages are not shipped; the
  manifest lists them, so that a node lacking one says to pip install it there.
* **A notebook or ``__main__``**: the app is *captured by value*. Its handler, Mod and
  lifespan functions are shipped as source (via :mod:`inspect`), together with what they
  refer to by global name, and the app is rebuilt from them on the node. What can be
  captured:

  - modules (``import numpy as np``) and functions or classes importable from an
    installed module (``from sklearn.linear_model import SGDClassifier``) — by reference,
    so the node must have the same packages installed;
  - modules of your own that are not installed (a ``mylib.py`` beside the notebook) —
    their package's source files are shipped;
  - constants: ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes`` and tuples, lists,
    sets and dicts of them;
  - other functions and classes defined in the notebook — captured the same way.

  Anything else — a dataset, a model instance, a tensor, a ``functools.partial``, a
  lambda, a closure over a local variable — raises :class:`~fedlab.errors.BundleError`
  naming the object and who refers to it. Create such objects inside the function that
  needs them (load data in ``train``), or move the code into a module and bundle it by
  import path. The captured module is compiled with ``from __future__ import
  annotations``, so annotations are never evaluated on the node.

Format (version 1)
------------------
A zip archive (deterministic: sorted entries, fixed timestamps) holding

``manifest.json``
    ``{"format": "fedlab-bundle", "version": 1, "fedlab": "<version>", "python": "3.11",
    "client_app": {"module": "pkg.client_app", "attr": "app", "source": "import"},
    "server_app": {...} or null, "run_config": {...},
    "requires": {"numpy": ["numpy"], ...}, "not_shipped": {"mod": "<why>", ...},
    "files": {"pkg/client_app.py": {"sha256": "<hex>", "size": 1234}, ...}}``;
    ``source`` is ``"import"`` or ``"captured"``; ``requires`` maps the installed packages
    the code imports to their distributions, ``not_shipped`` the user's modules left out to
    the reason (both only explain a missing module on a node). A signed bundle's manifest
    also holds ``"run": {"config_sha256": ..., "nonce": ..., "expires_at": ...}``, which
    binds the signature to one run (see :func:`check_run_binding`).
``signature.json`` (only in signed bundles)
    ``{"algorithm": "ed25519", "public_key": "<32 bytes hex>", "signature": "<64 bytes hex>"}``,
    the signature of the exact bytes of ``manifest.json``. Since the manifest holds every
    file's hash, it covers the code too.
``code/<path>``
    each file listed in the manifest; ``code/`` is put on the import path on the node.

A bundle whose entries differ from the manifest, whose files do not match their hashes,
whose paths are not plain relative paths, or that is larger than 64 MB is refused.

Examples
--------
>>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
>>> key = Ed25519PrivateKey.generate()
>>> data = build_bundle("fedlab.demo:client", signing_key=key)
>>> bundle = load_bundle(data, trusted_keys=[key.public_key()])
>>> bundle.manifest["client_app"]
{'attr': 'client', 'module': 'fedlab.demo', 'source': 'import'}
>>> type(bundle.client_app()).__name__
'ClientApp'
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fedlab.client import ClientApp
from fedlab.context import UserConfig

# The package's parts, by module: their helpers are not part of the package's surface.
from fedlab.deploy.bundle import _apps, _binding, _deps, _files, _format, _importer
from fedlab.deploy.bundle._binding import DEFAULT_VALID_FOR, check_new_run, check_run_binding
from fedlab.errors import BundleError
from fedlab.server import ServerApp

__all__ = ["Bundle", "build_bundle", "check_new_run", "check_run_binding", "load_bundle", "load_run_bundle"]


class Bundle:
    """A checked app bundle: its manifest and files, and the apps it holds.

    Built by :func:`load_bundle`, which verified every hash (and the signature when asked).
    The code is imported only when :meth:`client_app` or :meth:`server_app` is called.

    Attributes
    ----------
    manifest
        The parsed ``manifest.json``.
    digest
        SHA-256 (hex) of the bundle's bytes: a stable name to cache it by.
    signer
        The public key that signed the bundle, or None if it is unsigned.
    """

    def __init__(
        self,
        manifest: dict[str, Any],
        files: Mapping[str, bytes],
        digest: str,
        signer: Ed25519PublicKey | None = None,
    ) -> None:
        self.manifest = manifest
        self.digest = digest
        self.signer = signer
        self._files = dict(files)
        self._root: Path | None = None

    @property
    def files(self) -> Mapping[str, bytes]:
        """The shipped files, by path relative to the import root (read-only)."""
        return MappingProxyType(self._files)

    @property
    def run_config(self) -> UserConfig:
        """The run config the bundle was built with (often overridden per run)."""
        return dict(self.manifest.get("run_config") or {})

    def extract(self, directory: str | Path | None = None) -> Path:
        """Write the code to ``directory`` (default: a private temporary directory, removed
        at exit) and return it; later imports of the bundle's apps use it."""
        if self._root is None or directory is not None:
            self._root = _importer.write_files(self._files, None if directory is None else Path(directory))
        return self._root

    def client_app(self) -> ClientApp:
        """Import and return the bundle's ClientApp (importing runs the app's module code)."""
        app = self._load(self.manifest["client_app"])
        if not isinstance(app, ClientApp):
            raise BundleError(
                f"The bundle's client_app is a {type(app).__name__}, not a ClientApp."
            )
        return app

    def server_app(self) -> ServerApp | None:
        """Import and return the bundle's ServerApp, or None if it carries none."""
        entry = self.manifest.get("server_app")
        if entry is None:
            return None
        app = self._load(entry)
        if not isinstance(app, ServerApp):
            raise BundleError(
                f"The bundle's server_app is a {type(app).__name__}, not a ServerApp."
            )
        return app

    def _load(self, entry: Mapping[str, Any]) -> object:
        module, attr = _apps.check_entry(entry)
        if self.manifest.get("flower") is True:
            # A Flower app's `import flwr...` must reach the compatibility layer, also in the
            # SuperNode's and SuperLink's per-run processes, and also where real flwr is installed.
            from fedlab.compat.flower import enable

            enable()
        tops = {_files.top_level(path.split("/")[0].removesuffix(".py")) for path in self._files}
        shipped = _files.top_level(module) in tops
        root = self.extract() if shipped else None
        return _importer.import_attribute(
            root,
            tops if shipped else (),
            module,
            attr,
            lambda name: _deps.explain_missing(name, self.manifest),
        )

    def __repr__(self) -> str:
        app = self.manifest["client_app"]
        signed = "unsigned" if self.signer is None else "signed"
        return (
            f"Bundle({app.get('module')}:{app.get('attr')}, {len(self._files)} files, "
            f"{signed}, digest={self.digest[:12]})"
        )


def build_bundle(
    client_app: ClientApp | str,
    server_app: ServerApp | str | None = None,
    *,
    run_config: Mapping[str, bool | int | float | str] | None = None,
    signing_key: Ed25519PrivateKey | None = None,
    project_dir: str | Path | None = None,
    valid_for: float = DEFAULT_VALID_FOR,
) -> bytes:
    """Package apps into bundle bytes (see the module docstring for what is captured).

    Parameters
    ----------
    client_app
        A ClientApp, or its import path ``"package.module:attr"``.
    server_app
        Optionally a ServerApp, or its import path, for runs whose server side runs on
        the SuperLink's machine.
    run_config
        Default run config shipped with the code (str keys; bool/int/float/str values).
    signing_key
        An Ed25519 private key; SuperNodes that trust its public key accept the bundle.
        A signed bundle is bound to one run: its manifest gains a ``"run"`` entry (the
        SHA-256 of ``run_config``, a random nonce, an expiry) that the signature covers,
        so it runs only for one run created with exactly ``run_config``.
    project_dir
        Directory added to the import path while resolving import paths (an app project).
    valid_for
        Seconds from now during which a signed bundle may start its run (default 7 days).

    Raises
    ------
    BundleError
        If an app cannot be found or captured; the message names what and why.
    """
    config = _check_run_config(run_config)
    added = str(Path(project_dir).resolve()) if project_dir is not None else None
    if added is not None:
        sys.path.insert(0, added)
    try:
        client_entry, files = _apps.app_entry(client_app, ClientApp, "client_app")
        server_entry = None
        if server_app is not None:
            server_entry, server_files = _apps.app_entry(server_app, ServerApp, "server_app")
            for path, content in server_files.items():
                if files.setdefault(path, content) != content:
                    raise BundleError(
                        f"The client and server apps ship different versions of {path!r}."
                    )
        # Modules of the user's that the shipped code imports travel too (see _deps).
        closure = _deps.close_over_imports(files)
    finally:
        if added is not None and added in sys.path:
            sys.path.remove(added)
    from fedlab.version import __version__

    manifest = {
        "client_app": client_entry,
        "server_app": server_entry,
        "run_config": config,
        "requires": closure.requires,
        "not_shipped": closure.not_shipped,
        "flower": _imports_flower(closure.files),
        "fedlab": __version__,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
    }
    if signing_key is not None:
        manifest["run"] = _binding.make_binding(config, valid_for=valid_for)
    return _format.write_bundle(manifest, closure.files, signing_key)


_FLOWER_IMPORT = re.compile(rb"^[ \t]*(?:from|import)[ \t]+flwr(?:_datasets)?\b", re.MULTILINE)


def _imports_flower(files: Mapping[str, bytes]) -> bool:
    """True when shipped code imports ``flwr`` or ``flwr_datasets`` (a Flower app)."""
    return any(_FLOWER_IMPORT.search(data) for path, data in files.items() if path.endswith(".py"))


def load_bundle(data: bytes, *, trusted_keys: Sequence[Ed25519PublicKey] | None = None) -> Bundle:
    """Check bundle bytes and return the :class:`Bundle`; nothing is imported yet.

    Parameters
    ----------
    data
        What :func:`build_bundle` returned.
    trusted_keys
        Public keys whose signatures are accepted. None checks only the hashes (and a
        signature if present); a list, even empty, refuses bundles not signed by one of them.

    Raises
    ------
    BundleError
        If the bundle is damaged, was modified after it was built or signed, or is not
        signed by a trusted key.
    """
    manifest, files, signer = _format.read_bundle(data, trusted_keys)
    _apps.check_entry(manifest["client_app"])
    if manifest.get("server_app") is not None:
        _apps.check_entry(manifest["server_app"])
    _check_run_config(manifest.get("run_config"))
    return Bundle(manifest, files, _format.sha256_hex(bytes(data)), signer)


def load_run_bundle(
    data: bytes,
    *,
    run_id: int,
    run_config: Mapping[str, Any] | None,
    trusted_keys: Sequence[Ed25519PublicKey] | None,
    allow_unsigned: bool,
    seen_nonces: MutableMapping[str, int] | None = None,
    now: float | None = None,
) -> Bundle:
    """Load a run's bundle as a SuperNode or the ServerApp launcher must: checked for the run.

    With ``trusted_keys`` the bundle must be signed by one of them and bound to run
    ``run_id`` (:func:`check_run_binding`: its config, unexpired, a nonce not in
    ``seen_nonces`` for another run). Without, ``allow_unsigned`` must be set (the process
    was told ``--insecure-allow-unsigned``); a binding the bundle carries is still checked.

    Raises
    ------
    BundleError
        If the bundle is refused; the message says why and what to do.
    """
    _binding.refuse_without_trust(trusted_keys, allow_unsigned)
    bundle = load_bundle(data, trusted_keys=list(trusted_keys) if trusted_keys else None)
    if bundle.signer is not None or _binding.is_bound(bundle.manifest):
        check_run_binding(bundle.manifest, run_config, run_id=run_id, now=now, seen_nonces=seen_nonces)
    return bundle


def _check_run_config(config: object) -> UserConfig:
    if config is None:
        return {}
    if not isinstance(config, Mapping) or not all(
        isinstance(k, str) and isinstance(v, bool | int | float | str) for k, v in config.items()
    ):
        raise BundleError(
            f"run_config must map str to bool/int/float/str, got {config!r}; "
            "pass nested settings as separate keys such as 'optimizer.lr'."
        )
    return dict(config)

"""Fuzz the bundle reader: arbitrary zips, and valid bundles with one part replaced.

The promise (fedlab.deploy.bundle.load_bundle and the reader behind it): BundleError and
nothing else. Raw mutations of a zip mostly break its CRCs, so the first byte of an input
picks what the rest is:

0. the whole bundle (any bytes);
1. the manifest.json of an otherwise valid bundle (zip rebuilt around it, the manifest
   signed again so that the reader gets past the signature);
2. its signature.json;
3. the bytes of one of its code files;
4. a list of extra zip entries, ``name\\0content`` separated by ``\\n\\n``;
5. the manifest.json of the bundle without its signature.

Each input is read without trusted keys and with the signing key trusted. Run:
``python fuzz/fuzz_bundle.py fuzz/corpus/bundle -runs=1000000``.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence

from _common import instrumented, run

with instrumented():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from fedlab.deploy.bundle import load_bundle
    from fedlab.deploy.bundle._format import read_bundle, write_bundle
    from fedlab.errors import BundleError

TARGET = "bundle"
#: A fixed key (its seed is 32 zero bytes), so that every run builds the same bundle.
SIGNING_KEY = Ed25519PrivateKey.from_private_bytes(bytes(32))
TRUSTED = [SIGNING_KEY.public_key()]
CODE = {
    "app_pkg/__init__.py": b"",
    "app_pkg/client_app.py": b"import fedlab as fl\n\napp = fl.ClientApp()\n",
}
MANIFEST = {
    "client_app": {"module": "app_pkg.client_app", "attr": "app"},
    "server_app": None,
    "run_config": {"lr": 0.1, "rounds": 3},
    "requires": [],
    "not_shipped": [],
}


def valid_bundle() -> bytes:
    """A small signed bundle, as build_bundle writes them."""
    return write_bundle(MANIFEST, CODE, SIGNING_KEY)


_VALID = valid_bundle()
_ENTRIES = {
    info.filename: zipfile.ZipFile(io.BytesIO(_VALID)).read(info.filename)
    for info in zipfile.ZipFile(io.BytesIO(_VALID)).infolist()
}


def signature(manifest: bytes) -> bytes:
    """A signature.json over ``manifest`` by :data:`SIGNING_KEY`, in the bundle's format."""
    public = SIGNING_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    body = {"algorithm": "ed25519", "public_key": public.hex(), "signature": SIGNING_KEY.sign(manifest).hex()}
    return json.dumps(body).encode()


def rezip(change: dict[str, bytes], extra: Sequence[tuple[str, bytes]] = (), drop: str = "") -> bytes:
    """The valid bundle's entries, those named in ``change`` replaced, ``extra`` appended."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, content in _ENTRIES.items():
            if name != drop:
                archive.writestr(name, change.get(name, content))
        for name, content in extra:
            archive.writestr(zipfile.ZipInfo(name), content)
    return buffer.getvalue()


def bundle_from(data: bytes) -> bytes:
    """The bundle bytes an input stands for (see the module docstring)."""
    mode, rest = (data[0] % 6, data[1:]) if data else (0, b"")
    if mode == 1:
        return rezip({"manifest.json": rest, "signature.json": signature(rest)})
    if mode == 5:
        return rezip({"manifest.json": rest}, drop="signature.json")
    if mode == 2:
        return rezip({"signature.json": rest})
    if mode == 3:
        return rezip({"code/app_pkg/client_app.py": rest})
    if mode == 4:
        extra = []
        for part in rest.split(b"\n\n")[:8]:
            name, _, content = part.partition(b"\0")
            extra.append((name.decode("utf-8", "replace") or "x", content))
        try:
            return rezip({}, extra)
        except ValueError:  # a name zipfile itself refuses to write (e.g. a NUL)
            return rest
    return rest


def test_one_input(data: bytes) -> None:
    """Read the bundle ``data`` stands for, without and with trusted keys."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns when writing a duplicate name
        bundle = bundle_from(data)
    for keys in (None, TRUSTED):
        try:
            read_bundle(bundle, keys)
        except BundleError:
            pass
        try:
            load_bundle(bundle, trusted_keys=keys)
        except BundleError:
            pass


if __name__ == "__main__":
    run(test_one_input, everything=True)  # zipfile's branches matter here

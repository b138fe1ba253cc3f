"""The bytes of an app bundle: a zip with a manifest, the code, and an optional signature.

Kept apart from the rest of :mod:`fedlab.deploy.bundle` so that reading and checking the
container (paths, sizes, hashes, signature) is one small piece of code with no importing
in it: nothing here runs the bundle's code.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fedlab.errors import BundleError

__all__ = [
    "CODE_DIR",
    "FORMAT",
    "MANIFEST",
    "MAX_BUNDLE_BYTES",
    "SIGNATURE",
    "VERSION",
    "check_path",
    "key_fingerprint",
    "read_bundle",
    "sha256_hex",
    "write_bundle",
]

FORMAT = "fedlab-bundle"
VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "signature.json"
CODE_DIR = "code/"
#: Largest bundle accepted, compressed or not; app code is small, data belongs elsewhere.
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
_MAX_FILES = 10_000
_MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# A relative POSIX path of plain components: no "..", no absolute paths, no backslashes.
_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
# A fixed timestamp makes the same inputs give byte-identical bundles (and digests).
_EPOCH = (1980, 1, 1, 0, 0, 0)
# What zipfile raises on damaged input: besides BadZipFile, zlib's error for corrupt
# deflate data, RuntimeError for encrypted entries, NotImplementedError for unknown
# compression methods and versions.
_ZIP_FAILURES = (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error, RuntimeError,
                 NotImplementedError)  # fmt: skip


def sha256_hex(data: bytes) -> str:
    """Return the SHA-256 of ``data`` as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """A short printable name for a public key: the first 16 hex digits of its SHA-256."""
    return sha256_hex(key.public_bytes(Encoding.Raw, PublicFormat.Raw))[:16]


def check_path(path: str) -> str:
    """Return ``path`` if it is a safe relative file path inside a bundle, else raise."""
    parts = path.split("/")
    if not path or any(_COMPONENT.fullmatch(p) is None or p in (".", "..") for p in parts):
        raise BundleError(
            f"The bundle holds a file named {path!r}, which is not a plain relative path; "
            "the bundle is damaged or was crafted to escape its directory, so it is refused."
        )
    return path


def write_bundle(
    manifest: Mapping[str, Any],
    files: Mapping[str, bytes],
    signing_key: Ed25519PrivateKey | None,
) -> bytes:
    """Serialise ``manifest`` (``files`` entries are filled in here) and ``files`` into a zip."""
    entries = {check_path(p): {"sha256": sha256_hex(b), "size": len(b)} for p, b in files.items()}
    body = dict(manifest, files=entries, format=FORMAT, version=VERSION)
    manifest_bytes = json.dumps(body, sort_keys=True, indent=1).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        _add(archive, MANIFEST, manifest_bytes)
        if signing_key is not None:
            _add(archive, SIGNATURE, _signature(manifest_bytes, signing_key))
        for path in sorted(files):
            _add(archive, CODE_DIR + path, files[path])
    data = buffer.getvalue()
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(
            f"The bundle is {len(data) / 1e6:.1f} MB, above the {MAX_BUNDLE_BYTES / 1e6:.0f} MB "
            "limit; keep data and model files out of the app's package and load them at run time."
        )
    return data


def read_bundle(
    data: bytes, trusted_keys: Sequence[Ed25519PublicKey] | None
) -> tuple[dict[str, Any], dict[str, bytes], Ed25519PublicKey | None]:
    """Open and check a bundle; return its manifest, its files and the key that signed it.

    Every file must be listed in the manifest with a matching size and SHA-256, and no
    other entry may exist. With ``trusted_keys`` the signature must verify under one of
    them; without, a signature that is present must still be intact.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise BundleError(f"A bundle is bytes, got {type(data).__name__}.")
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(
            f"The bundle is {len(data)} bytes, above the {MAX_BUNDLE_BYTES}-byte limit."
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(bytes(data)))
        infos = archive.infolist()
    except _ZIP_FAILURES as exc:
        raise BundleError(
            f"These bytes are not a fedlab app bundle (not a valid zip: {exc})."
        ) from None
    names = [info.filename for info in infos]
    if len(names) != len(set(names)) or len(names) > _MAX_FILES + 2:
        raise BundleError("The bundle has duplicate or too many entries; it is refused.")
    if MANIFEST not in names:
        raise BundleError("The bundle has no manifest.json; it is not a fedlab app bundle.")
    manifest_bytes = _read(archive, MANIFEST, _MAX_MANIFEST_BYTES)
    if len(manifest_bytes) > _MAX_MANIFEST_BYTES:
        raise BundleError("The bundle's manifest.json is too large to be genuine; it is refused.")
    manifest = _parse_manifest(manifest_bytes)
    signer = _check_signature(archive, names, manifest_bytes, trusted_keys)
    listed: dict[str, Any] = manifest["files"]
    expected = {CODE_DIR + check_path(p) for p in listed} | {MANIFEST} | ({SIGNATURE} & set(names))
    if set(names) != expected:
        extra = sorted(set(names) - expected) or sorted(expected - set(names))
        raise BundleError(
            f"The bundle's files do not match its manifest (first difference: {extra[0]!r}); "
            "it was modified after it was built, so it is refused."
        )
    files: dict[str, bytes] = {}
    total = 0
    for path, entry in listed.items():
        entry = entry if isinstance(entry, dict) else {}  # refused just below
        size, digest = entry.get("size"), entry.get("sha256")
        if not isinstance(size, int) or not isinstance(digest, str) or size < 0:
            raise BundleError(
                f"The manifest entry for {path!r} is malformed; the bundle is refused."
            )
        total += size
        if total > MAX_BUNDLE_BYTES:
            raise BundleError(
                "The bundle's files add up to more than the size limit; it is refused."
            )
        content = _read(archive, CODE_DIR + path, size)
        if len(content) != size or sha256_hex(content) != digest:
            raise BundleError(
                f"The file {path!r} does not match the hash in the bundle's manifest: the bundle "
                "was modified after it was built, so it is refused."
            )
        files[path] = content
    return manifest, files, signer


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def _read(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    # At most limit + 1 bytes, so a lying header cannot make us inflate a zip bomb; the
    # caller sees an over-long result and refuses it.
    try:
        with archive.open(name) as stream:
            content = stream.read(limit + 1)
    except _ZIP_FAILURES as exc:
        raise BundleError(f"The bundle entry {name!r} is damaged ({exc}); it is refused.") from None
    return content


def _parse_manifest(manifest_bytes: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(manifest_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # too deeply nested
        raise BundleError(f"The bundle's manifest.json is not valid JSON ({exc}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError("The manifest does not describe a fedlab app bundle; it is refused.")
    if manifest.get("version") != VERSION:
        raise BundleError(
            f"The bundle has format version {manifest.get('version')!r}, but this fedlab reads "
            f"version {VERSION}; build it with the same fedlab version that runs it."
        )
    if not isinstance(manifest.get("files"), dict) or not isinstance(
        manifest.get("client_app"), dict
    ):
        raise BundleError(
            "The bundle's manifest lacks its 'files' or 'client_app' entry; it is refused."
        )
    return manifest


def _signature(manifest_bytes: bytes, key: Ed25519PrivateKey) -> bytes:
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    body = {
        "algorithm": "ed25519",
        "public_key": public.hex(),
        "signature": key.sign(manifest_bytes).hex(),
    }
    return json.dumps(body, sort_keys=True, indent=1).encode()


def _check_signature(
    archive: zipfile.ZipFile,
    names: list[str],
    manifest_bytes: bytes,
    trusted_keys: Sequence[Ed25519PublicKey] | None,
) -> Ed25519PublicKey | None:
    if SIGNATURE not in names:
        if trusted_keys is not None:
            raise BundleError(
                "The bundle is not signed, and this process only runs code signed by a trusted "
                "key; "
                "build it with build_bundle(..., signing_key=key) using a key the node trusts."
            )
        return None
    try:
        body = json.loads(_read(archive, SIGNATURE, 4096))
        if body["algorithm"] != "ed25519":
            raise ValueError(f"unknown algorithm {body['algorithm']!r}")
        signer = Ed25519PublicKey.from_public_bytes(bytes.fromhex(body["public_key"]))
        signature = bytes.fromhex(body["signature"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise BundleError(
            f"The bundle's signature.json is malformed ({exc}); it is refused."
        ) from None
    if trusted_keys is not None:
        raw = signer.public_bytes(Encoding.Raw, PublicFormat.Raw)
        matches = [k for k in trusted_keys if k.public_bytes(Encoding.Raw, PublicFormat.Raw) == raw]
        if not matches:
            raise BundleError(
                f"The bundle is signed by key {key_fingerprint(signer)}, which is not among the "
                f"{len(trusted_keys)} trusted key(s); add its public key to the trusted keys "
                "or sign the bundle with a trusted key."
            )
        signer = matches[0]
    try:
        signer.verify(signature, manifest_bytes)
    except InvalidSignature:
        raise BundleError(
            f"The bundle's signature (key {key_fingerprint(signer)}) does not match its manifest: "
            "the bundle was modified after it was signed, so it is refused."
        ) from None
    return signer

"""Signing bundles, so that an import loads only state its user (or a machine sharing their key)
exported.

Loading a bundle unpickles its values and may replay its cells: both run code. ``export`` signs a
bundle with an HMAC-SHA256 key private to the user; ``import`` refuses a bundle that is unsigned,
signed with another key, or changed since it was signed, unless the user passes ``--trust``. The
signature covers ``bundle.json`` (every field but the signature itself) and the BLAKE3 digest of
every other file of the bundle (the database, which holds the cells and manifests, and the
packs, which hold the pickled bytes). BLAKE3 hashes a 145 MB bundle in about 0.02 s here, where
SHA-256 took 0.08 s of each import; bundles signed with SHA-256 digests (``hmac-sha256``, before)
are still verified. docs/SECURITY.md describes what this protects against.

The key is ``$NBSTATE_KEY`` when set (64 hex digits, or any passphrase), else the file
``$XDG_CONFIG_HOME/nbstate/key`` (``~/.config/nbstate/key``), created on the first export,
readable by its owner only. Never imports IPython.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

KEY_ENV = "NBSTATE_KEY"
ALGORITHM = "hmac-sha256+blake3"  # what export signs with: HMAC-SHA256 over BLAKE3 file digests
ALGORITHMS = (ALGORITHM, "hmac-sha256")  # what import verifies ("hmac-sha256": SHA-256 file digests)
SIGNATURE_FIELD = "signature"
_MANIFEST = "bundle.json"


class UntrustedBundle(Exception):
    """A bundle whose signature does not show that the user's key made it; the message says why
    and how to import it anyway."""


def key_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "nbstate" / "key"


def _parse_key(text: str) -> bytes:
    text = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text)
    if not text:
        raise ValueError("the nbstate key is empty")
    return text.encode()


def load_key(create: bool = False) -> bytes | None:
    """The user's signing key (None when there is none and ``create`` is false)."""
    env = os.environ.get(KEY_ENV)
    if env:
        return _parse_key(env)
    path = key_file()
    try:
        return _parse_key(path.read_text())
    except FileNotFoundError:
        if not create:
            return None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile: use theirs
        return _parse_key(path.read_text())
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    return key


def key_id(key: bytes) -> str:
    """A name for a key that does not reveal it (to tell keys apart in messages)."""
    return hashlib.sha256(b"nbstate key id\0" + key).hexdigest()[:16]


def where_key_is() -> str:
    return f"${KEY_ENV}" if os.environ.get(KEY_ENV) else str(key_file())


def _digest_file(path: Path, alg: str) -> str:
    if alg == "hmac-sha256":
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    import blake3  # imported on the first export or import only

    b = blake3.blake3(max_threads=blake3.blake3.AUTO)
    if path.stat().st_size:
        b.update_mmap(str(path))  # the file mapped, hashed by several threads without the GIL
    return b.hexdigest()


def file_digests(root: Path, alg: str = ALGORITHM) -> dict[str, str]:
    """The digest of every file under ``root`` but bundle.json, by relative POSIX path: BLAKE3,
    or SHA-256 for the older algorithm."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            raise UntrustedBundle(f"the bundle holds a symbolic link {path.relative_to(root).as_posix()!r}; refusing it")
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        if rel == _MANIFEST:
            continue
        out[rel] = _digest_file(path, alg)
    return out


def _mac(key: bytes, manifest: dict[str, Any], files: dict[str, str], kid: str, alg: str = ALGORITHM) -> str:
    signed = {k: v for k, v in manifest.items() if k != SIGNATURE_FIELD}
    message = json.dumps({"manifest": signed, "files": files, "key_id": kid, "alg": alg}, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def sign(root: Path, manifest: dict[str, Any], key: bytes, alg: str = ALGORITHM) -> dict[str, Any]:
    """The signature of a bundle built in ``root`` whose bundle.json will be ``manifest``
    (``alg``: one of ALGORITHMS; export always uses ALGORITHM)."""
    files = file_digests(root, alg)
    kid = key_id(key)
    return {"alg": alg, "key_id": kid, "files": files, "mac": _mac(key, manifest, files, kid, alg)}


def verify(root: Path, manifest: dict[str, Any], src: str) -> str:
    """Check the bundle at ``root`` (fetched from ``src``) against the user's key. Returns a line
    saying so; raises UntrustedBundle, with what to do, when the key did not sign it as it is."""
    anyway = f"If you trust where it came from, import it anyway: `%nbstate import {src} --trust`."
    signature = manifest.get(SIGNATURE_FIELD)
    if signature is None:
        raise UntrustedBundle(
            f"the bundle at {src} is not signed. Importing it loads pickled values and may replay cells, "
            f"which runs code made elsewhere. {anyway}"
        )
    if not isinstance(signature, dict) or signature.get("alg") not in ALGORITHMS or not isinstance(signature.get("files"), dict):
        raise UntrustedBundle(f"the bundle at {src} has a signature nbstate cannot read (malformed, or another algorithm). {anyway}")
    key = load_key()
    theirs = str(signature.get("key_id", "?"))
    if key is None:
        raise UntrustedBundle(
            f"the bundle at {src} is signed with key {theirs}, and this machine has no nbstate key yet "
            f"({where_key_is()}). To import bundles you export on another machine, give this one the same key "
            f"(copy {key_file()} or set ${KEY_ENV}). {anyway}"
        )
    mine = key_id(key)
    if theirs != mine:
        raise UntrustedBundle(
            f"the bundle at {src} is signed with key {theirs}, not with yours ({mine}, {where_key_is()}): "
            f"someone else, or another machine with its own key, exported it. {anyway}"
        )
    alg = signature["alg"]
    files = file_digests(root, alg)
    signed_files = {str(k): str(v) for k, v in signature["files"].items()}
    changed = sorted(f for f in set(files) | set(signed_files) if files.get(f) != signed_files.get(f))
    if changed or not hmac.compare_digest(_mac(key, manifest, signed_files, mine, alg), str(signature.get("mac", ""))):
        what = f"{', '.join(changed[:3])}{' ...' if len(changed) > 3 else ''} changed" if changed else "bundle.json changed"
        raise UntrustedBundle(
            f"the bundle at {src} does not match its signature ({what} since it was exported, or it is damaged). "
            f"{anyway}"
        )
    return f"signature: made with your key ({mine})"

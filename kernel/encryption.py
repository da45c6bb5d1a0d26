"""Encryption at rest for every stored credential: AES-256-GCM with rotatable keys.

Keys come from ``GOFER_ENCRYPTION_KEY``: a comma-separated list of 32-byte keys (base64 or 64 hex characters). The
first key encrypts; every key decrypts, so rotating is "put the new key first, keep the old ones, run
``manage.py rotate_encryption_key``". With no key configured (the embedded default) one is generated once into
``$GOFER_HOME/encryption_key`` with mode 0600.

A ciphertext is ``gofer:v1:<key id>:<base64(nonce || ciphertext+tag)>``. The key id (the first 8 hex digits of the
SHA-256 of the key) says which key wrote it, so re-encryption can skip rows that are already current. The associated
data binds a ciphertext to what it protects (for example ``secretstore.PipelineSecret.value``): a value copied into
another column does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PREFIX = "gofer:v1:"
NONCE_BYTES = 12


class DecryptionError(Exception):
    """The value was not written by any configured key, or it was altered."""


@dataclass(frozen=True)
class Key:
    key_id: str
    aead: AESGCM


def _parse_key(raw: str) -> bytes:
    raw = raw.strip()
    if len(raw) == 64:
        try:
            return bytes.fromhex(raw)
        except ValueError:
            pass
    try:
        decoded = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_" if ("-" in raw or "_" in raw) else None)
    except (binascii.Error, ValueError) as exc:
        raise ImproperlyConfigured(
            "GOFER_ENCRYPTION_KEY: each key must be 32 bytes, as base64 or 64 hex characters "
            "(generate one with `openssl rand -base64 32`)"
        ) from exc
    if len(decoded) != 32:
        raise ImproperlyConfigured(
            f"GOFER_ENCRYPTION_KEY: each key must decode to 32 bytes, one decodes to {len(decoded)}"
        )
    return decoded


def _key_file_default() -> str:
    """The embedded default: a key generated once into $GOFER_HOME, never printed."""
    path = settings.GOFER_HOME / "encryption_key"
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(base64.b64encode(secrets.token_bytes(32)).decode())
    return path.read_text().strip()


@functools.cache
def _keys_for(configured: str) -> tuple[Key, ...]:
    raws = [part for part in configured.split(",") if part.strip()]
    keys = []
    for raw in raws:
        material = _parse_key(raw)
        keys.append(Key(key_id=hashlib.sha256(material).hexdigest()[:8], aead=AESGCM(material)))
    if not keys:
        raise ImproperlyConfigured("GOFER_ENCRYPTION_KEY is set but holds no key")
    return tuple(keys)


def keys() -> tuple[Key, ...]:
    """The configured keys, the encrypting one first."""
    configured = getattr(settings, "GOFER_ENCRYPTION_KEY", "") or _key_file_default()
    return _keys_for(configured)


def current_key_id() -> str:
    return keys()[0].key_id


def encrypt(plaintext: str, context: str) -> str:
    """Encrypt ``plaintext`` with the current key, bound to ``context``. Never returns or logs the plaintext."""
    key = keys()[0]
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = key.aead.encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
    return f"{PREFIX}{key.key_id}:{base64.b64encode(nonce + sealed).decode('ascii')}"


def key_id_of(ciphertext: str) -> str | None:
    if not ciphertext.startswith(PREFIX):
        return None
    return ciphertext[len(PREFIX) :].split(":", 1)[0]


def decrypt(ciphertext: str, context: str) -> str:
    """The plaintext of ``ciphertext``; raises DecryptionError if no configured key wrote it for this context."""
    key_id = key_id_of(ciphertext)
    if key_id is None:
        raise DecryptionError("value is not a Gofer ciphertext")
    blob_b64 = ciphertext[len(PREFIX) + len(key_id) + 1 :]
    try:
        blob = base64.b64decode(blob_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecryptionError("ciphertext is not valid base64") from exc
    candidates = [k for k in keys() if k.key_id == key_id]
    if not candidates:
        raise DecryptionError(f"no configured encryption key has id {key_id}; was an old key removed too early?")
    for key in candidates:
        try:
            return key.aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context.encode("utf-8")).decode("utf-8")
        except InvalidTag:
            continue
    raise DecryptionError("ciphertext failed authentication (altered, or bound to another field)")


def needs_reencryption(ciphertext: str) -> bool:
    """True when ``ciphertext`` was written by a key other than the current one."""
    return key_id_of(ciphertext) != current_key_id()

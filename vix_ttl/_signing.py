"""HMAC-SHA256 signatures for entries of shared cache stores.

Anyone who can write to a Redis or memcached server can write an entry under
any key. A signature made with a secret only the application knows lets a
reader tell its own entries from forged ones before it decodes anything. The
algorithm is fixed here, never read from the entry, and signatures are
compared with ``hmac.compare_digest``.

The signed message is the entry's wire key (as the backend sees it: moving an
entry to another key breaks its signature) and the rest of the entry after
the signature field (header and payload). The key goes first, length-prefixed,
so no key/body split of one message can pass for another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

__all__ = ["MIN_DISTINCT_BYTES", "MIN_SECRET_BYTES", "SIGNATURE_LENGTH", "Secret", "Signer", "signer_of"]

Secret = str | bytes | Sequence[str | bytes]
"""A secret, or several: the first signs, every one verifies (for rotation)."""

MIN_SECRET_BYTES = 16
"""Shorter secrets can be guessed offline from one signed entry."""
MIN_DISTINCT_BYTES = 8
"""Fewer different bytes is a placeholder (``"x" * 16``, 16 NUL bytes), not a secret."""

SIGNATURE_LENGTH = 43
"""Characters of a signature: base64url of 32 bytes, unpadded."""

_NO_KEY = b"\x00"  # the writer did not know the key (VixSerializer without VixPlugin)


class Signer:
    """Signs with the first of its secrets and verifies with any of them."""

    __slots__ = ("_macs",)

    def __init__(self, secrets: Sequence[bytes]) -> None:
        # Keyed once: copying a keyed HMAC skips re-deriving its pads per entry.
        self._macs = [hmac.new(secret, digestmod=hashlib.sha256) for secret in secrets]

    def sign(self, key: bytes | None, body: bytes) -> str:
        """The signature of *body* stored under *key* (``None``: not known to the writer)."""
        return _encode(self._digest(self._macs[0], key, body))

    def verify(self, key: bytes | None, body: bytes, signature: str) -> bool:
        """Whether *signature* is one of this signer's secrets' for *body* under *key*."""
        if len(signature) != SIGNATURE_LENGTH:
            return False
        try:
            expected = base64.urlsafe_b64decode(signature + "=")
        except ValueError:
            return False
        # Every secret is tried, whatever matched: the time taken does not say which.
        valid = False
        for mac in self._macs:
            valid |= hmac.compare_digest(self._digest(mac, key, body), expected)
        return valid

    @staticmethod
    def _digest(keyed: hmac.HMAC, key: bytes | None, body: bytes) -> bytes:
        mac = keyed.copy()
        if key is None:
            mac.update(_NO_KEY)
        else:
            mac.update(b"\x01%d:" % len(key))
            mac.update(key)
        mac.update(body)
        return mac.digest()


def signer_of(secret: Secret | None, *, owner: str) -> Signer | None:
    """A ``Signer`` for *secret* (``None`` for no secret), or a clear error naming *owner*.

    Raises:
        TypeError: *secret* is not a str, bytes, or a sequence of them.
        ValueError: it is empty, or a secret is shorter than ``MIN_SECRET_BYTES`` or holds fewer
            than ``MIN_DISTINCT_BYTES`` different bytes.
    """
    if secret is None:
        return None
    given = [secret] if isinstance(secret, str | bytes) else secret
    if not isinstance(given, Sequence) or not given:
        raise _error(owner, secret)
    secrets = []
    for item in given:
        if not isinstance(item, str | bytes):
            raise _error(owner, secret)
        raw = item.encode() if isinstance(item, str) else bytes(item)
        if len(raw) < MIN_SECRET_BYTES:
            raise ValueError(
                f"{owner}: each secret must be at least {MIN_SECRET_BYTES} bytes (a short one can be "
                f"guessed from a signed entry); make one with secrets.token_urlsafe(32)"
            )
        if len(set(raw)) < MIN_DISTINCT_BYTES:
            raise ValueError(
                f"{owner}: each secret must hold at least {MIN_DISTINCT_BYTES} different bytes (16 NUL "
                f"bytes, or a word repeated, is a placeholder anyone can guess); make one with "
                f"secrets.token_urlsafe(32)"
            )
        secrets.append(raw)
    return Signer(secrets)


def _error(owner: str, secret: object) -> TypeError:
    return TypeError(
        f"{owner}: secret must be a str or bytes, or a non-empty list of them (the first signs, "
        f"every one verifies), got {type(secret).__name__}"
    )


def _encode(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

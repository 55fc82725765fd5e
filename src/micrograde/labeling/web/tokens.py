"""Secrets of the labelling app: annotator tokens, signed session cookies and CSRF tokens.

- An annotator token is ``<annotator id>.<43 random url-safe characters>`` (256 bits). Only a
  salted scrypt hash is stored (``scrypt$<salt hex>$<hash hex>``); the id prefix lets a login find
  the one row to check instead of hashing against every annotator.
- A session cookie is ``<annotator id>.<issued unix time>.<nonce>.<HMAC-SHA256>`` signed with a
  per-app secret; it carries no secret of the annotator and expires after ``max_age`` seconds.
- The CSRF token of a session is an HMAC of the session cookie under the same secret, so it is
  bound to the session and needs no storage; every state-changing request must echo it in the
  ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

__all__ = [
    "new_token",
    "hash_token",
    "verify_token",
    "token_annotator_id",
    "SessionSigner",
    "SessionData",
]

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def new_token(annotator_id: int) -> str:
    """A fresh secret token for annotator ``annotator_id`` (shown once, never stored in clear)."""
    return f"{int(annotator_id)}.{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    """Salted scrypt hash of a token, as stored in ``annotators.token_hash`` (< 128 characters)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(token.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_token(token: str, stored: str | None) -> bool:
    """Constant-time check of ``token`` against a stored hash; False for any malformed input."""
    if not stored or not token or len(token) > 256:
        return False
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(token.encode(), salt=bytes.fromhex(salt_hex), **_SCRYPT)
    except (ValueError, UnicodeError):
        return False
    return hmac.compare_digest(digest.hex(), digest_hex)


def token_annotator_id(token: str) -> int | None:
    """The annotator id a token claims (to be verified), or None if the token is malformed."""
    head, sep, rest = token.partition(".")
    if not sep or not rest or not head.isdigit() or len(head) > 18:
        return None
    return int(head)


@dataclass(frozen=True)
class SessionData:
    annotator_id: int
    issued_at: int


class SessionSigner:
    """Signs and checks session cookies and derives per-session CSRF tokens (HMAC-SHA256)."""

    def __init__(self, secret: bytes, max_age: int = 7 * 24 * 3600):
        if len(secret) < 16:
            raise ValueError("the session secret must have at least 16 bytes")
        self._secret = bytes(secret)
        self.max_age = int(max_age)

    def _mac(self, purpose: str, payload: str) -> str:
        mac = hmac.new(self._secret, f"{purpose}:{payload}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def sign(self, annotator_id: int, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        payload = f"{int(annotator_id)}.{issued}.{secrets.token_urlsafe(12)}"
        return f"{payload}.{self._mac('session', payload)}"

    def verify(self, cookie: str | None, now: float | None = None) -> SessionData | None:
        """The session a cookie stands for, or None when it is missing, forged or expired."""
        if not cookie or len(cookie) > 512:
            return None
        payload, sep, mac = cookie.rpartition(".")
        if not sep or not hmac.compare_digest(mac, self._mac("session", payload)):
            return None
        parts = payload.split(".")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            return None
        issued = int(parts[1])
        current = time.time() if now is None else now
        if issued > current + 60 or current - issued > self.max_age:
            return None
        return SessionData(annotator_id=int(parts[0]), issued_at=issued)

    def csrf_token(self, cookie: str) -> str:
        """The CSRF token bound to a (valid) session cookie."""
        return self._mac("csrf", cookie)

    def check_csrf(self, cookie: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(cookie))

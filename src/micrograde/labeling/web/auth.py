"""Session, CSRF and security-header plumbing of the labelling app.

- ``mg_session``: HttpOnly, SameSite=Strict cookie signed with the app secret (see tokens.py).
- Every POST needs ``Content-Type: application/json`` and the ``X-CSRF-Token`` header: for the
  login, a double-submit token equal to the (readable, SameSite=Strict) ``mg_login_csrf`` cookie
  set with the page; after login, the per-session token that ``/api/login`` and ``/api/me`` return.
- No session or an unknown annotator: 401. An inactive annotator: 403.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, Request, Response

from micrograde.labeling.web.tokens import SessionSigner
from micrograde.pipeline.catalogue.schema import Annotator
from micrograde.pipeline.catalogue.workspace import Workspace
from micrograde.pipeline.io.atomic import create_private

__all__ = [
    "SESSION_COOKIE",
    "LOGIN_CSRF_COOKIE",
    "CSRF_HEADER",
    "SECURITY_HEADERS",
    "load_or_create_secret",
    "WebAuth",
]

SESSION_COOKIE = "mg_session"
LOGIN_CSRF_COOKIE = "mg_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
SECRET_FILE = ".labeling-secret"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def load_or_create_secret(ws: Workspace) -> bytes:
    """The app's signing secret, kept in ``WORKSPACE/.labeling-secret`` (mode 0600) so sessions
    survive a restart of the server. Delete the file to log everybody out."""
    path = Path(ws.root) / SECRET_FILE
    if not path.exists():
        create_private(path, secrets.token_bytes(32).hex().encode())  # mode 0600 from the start
    data = bytes.fromhex(path.read_text().strip())
    if len(data) < 16:
        raise ValueError(f"{path} holds too short a secret; delete it to make a new one")
    return data


@dataclass
class WebAuth:
    ws: Workspace
    signer: SessionSigner
    secure_cookies: bool = False

    # ------------------------------------------------------------------ cookies
    def set_session(self, response: Response, annotator_id: int) -> str:
        cookie = self.signer.sign(annotator_id)
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=self.signer.max_age,
            httponly=True,
            samesite="strict",
            secure=self.secure_cookies,
            path="/",
        )
        return cookie

    def clear_session(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=self.secure_cookies)

    def set_login_csrf(self, request: Request, response: Response) -> None:
        if not request.cookies.get(LOGIN_CSRF_COOKIE):
            response.set_cookie(
                LOGIN_CSRF_COOKIE,
                secrets.token_urlsafe(24),
                httponly=False,  # read by the page's script for the double-submit check
                samesite="strict",
                secure=self.secure_cookies,
                path="/",
            )

    # ------------------------------------------------------------------ checks
    @staticmethod
    def require_json(request: Request) -> None:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise HTTPException(415, "requests that change data must send Content-Type: application/json")

    def check_login_csrf(self, request: Request) -> None:
        self.require_json(request)
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        header = request.headers.get(CSRF_HEADER, "")
        if not cookie or not header or not secrets.compare_digest(cookie, header):
            raise HTTPException(403, "missing or invalid CSRF token; reload the page")

    def annotator(self, request: Request) -> tuple[Annotator, str]:
        """The logged-in, active annotator and their session cookie (401 / 403 otherwise)."""
        cookie = request.cookies.get(SESSION_COOKIE)
        data = self.signer.verify(cookie) if cookie is not None else None
        if cookie is None or data is None:
            raise HTTPException(401, "not logged in (or the session expired): enter your token")
        with self.ws.session() as s:
            row = s.get(Annotator, data.annotator_id)
        if row is None:
            raise HTTPException(401, "unknown annotator: log in again")
        if not row.active:
            raise HTTPException(403, f"annotator {row.name!r} is inactive")
        return row, cookie

    def annotator_for_post(self, request: Request) -> Annotator:
        """Like :meth:`annotator`, and also checks JSON content type and the session's CSRF token."""
        row, cookie = self.annotator(request)
        self.require_json(request)
        if not self.signer.check_csrf(cookie, request.headers.get(CSRF_HEADER)):
            raise HTTPException(403, "missing or invalid CSRF token; reload the page")
        return row

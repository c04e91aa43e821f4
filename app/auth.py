"""Who may talk to the server: Host allow-list, same-origin writes, tokens, security headers.

One ASGI middleware (outermost but one: the liveness probe stays answerable) applies, in order:

1. ``Host`` must be in ``MAE_ALLOWED_HOSTS`` (default: the loopback names plus the bind host, any
   port), else 400: a DNS-rebinding page cannot reach a 127.0.0.1 server under its own name.
2. A state-changing request (POST, PUT, PATCH, DELETE) whose ``Origin`` (or, without one,
   ``Referer``) is not this server's own gets 403: another site cannot cancel jobs with a form.
3. With ``MAE_AUTH_TOKEN`` (or ``MAE_AUTH_TOKEN_FILE``) set, every route but ``/api/health``,
   ``/api/ready``, ``/login`` and static assets needs ``Authorization: Bearer <token>`` or the
   session cookie ``/login`` sets (HttpOnly, SameSite=Strict), else 401 (pages answer with the
   login form). ``MAE_AUTH_SCOPE=write`` asks for it on state-changing requests only.
4. Every answer carries a Content-Security-Policy (scripts from this server only, no inline
   script or eval), ``X-Content-Type-Options: nosniff``, ``frame-ancestors 'none'`` /
   ``X-Frame-Options: DENY`` and ``Referrer-Policy: same-origin``.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
OPEN_PATHS = {"/api/health", "/api/ready", "/login", "/logout", "/favicon.ico"}
OPEN_PREFIXES = ("/static/", "/vendor/docs/")
COOKIE = "mae_session"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; worker-src 'self' blob:; font-src 'self' data:; "
       "object-src 'none'; "
       "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


def with_inline_scripts_allowed(response):
    """Give ``response`` (an HTML page we do not write, e.g. Swagger UI's) a CSP admitting
    exactly its own inline scripts, by hash; every other page keeps the strict one."""
    import base64
    import re

    scripts = re.findall(rb"<script>(.*?)</script>", response.body, flags=re.S)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'" for s in scripts)
    response.headers["Content-Security-Policy"] = CSP.replace("script-src 'self'", f"script-src 'self' {hashes}")
    return response


def read_tokens(tokens: str | None, token_file: Path | None) -> list[str]:
    """Tokens from ``MAE_AUTH_TOKEN`` (comma-separated) and ``MAE_AUTH_TOKEN_FILE`` (one a line,
    ``#`` comments); empty means no authentication."""
    found = [t.strip() for t in (tokens or "").split(",") if t.strip()]
    if token_file is not None:
        lines = Path(token_file).read_text(encoding="utf-8").splitlines()
        found += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    return found


def default_hosts(bind_host: str) -> list[str]:
    """Loopback names plus the name the server was told to bind to (not a wildcard)."""
    names = list(LOOPBACK_NAMES)
    if bind_host not in WILDCARD_HOSTS and bind_host not in names:
        names.append(bind_host)
    return names


def host_name(host_header: str) -> str:
    """``example.org:8000`` -> ``example.org``, ``[::1]:8000`` -> ``::1``; lower case."""
    text = host_header.strip().lower()
    if text.startswith("["):
        return text[1:text.find("]")] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


def session_value(token: str) -> str:
    """The cookie a token's login sets: derived from it, so the cookie never holds the token."""
    return hmac.new(token.encode(), b"mae-lab-session", hashlib.sha256).hexdigest()


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_NAMES or host.startswith("127.")


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, *, allowed_hosts: list[str], tokens: list[str],
                 scope: str = "all") -> None:
        self.app = app
        self.any_host = "*" in allowed_hosts
        self.allowed_hosts = {h.lower().strip("[]") for h in allowed_hosts}
        self.tokens = tokens
        self.sessions = [session_value(t) for t in tokens]
        self.write_only = scope == "write"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = self._with_headers(send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        host = headers.get("host", "")
        method, path = scope.get("method", "GET"), scope.get("path", "")
        probe = path in ("/api/health", "/api/ready") and method in ("GET", "HEAD")
        # no Host at all (HTTP/1.0, raw ASGI) cannot be a rebinding browser: browsers always send it
        if host and not (self.any_host or probe) and host_name(host) not in self.allowed_hosts:
            await _answer(send, 400, "bad_host",
                          f"this server does not answer to the host name {host_name(host)!r}; "
                          "use one it is configured for (MAE_ALLOWED_HOSTS)")
            return
        if method in UNSAFE_METHODS and not _same_origin(headers, host):
            await _answer(send, 403, "cross_origin",
                          "state-changing requests must come from this server's own pages "
                          "(the Origin or Referer header names another site)")
            return
        if path == "/login":
            await self._login(scope, receive, send, method, headers)
            return
        if path == "/logout" and method == "POST":
            await _redirect(send, "/login", cookie=f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
            return
        if self.tokens and self._needs_token(method, path) and not self._authorised(headers):
            if method == "GET" and "text/html" in headers.get("accept", ""):
                await _send_html(send, 401, _login_page(scope, None))
            else:
                await _answer(send, 401, "unauthorized",
                              "this server needs a token: send 'Authorization: Bearer <token>' "
                              "(MAE_AUTH_TOKEN) or sign in at /login",
                              extra=[(b"www-authenticate", b'Bearer realm="mae-lab"')])
            return
        await self.app(scope, receive, send)

    def _needs_token(self, method: str, path: str) -> bool:
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return False
        return method in UNSAFE_METHODS or not self.write_only

    def _authorised(self, headers: dict[str, str]) -> bool:
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
            return any(hmac.compare_digest(given, t) for t in self.tokens)
        cookie = _cookie(headers.get("cookie", ""), COOKIE)
        return cookie is not None and any(hmac.compare_digest(cookie, s) for s in self.sessions)

    async def _login(self, scope: Scope, receive: Receive, send: Send, method: str,
                     headers: dict[str, str]) -> None:
        if method != "POST":
            await _send_html(send, 200, _login_page(scope, None))
            return
        body = b""
        while len(body) < 8192:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        form = parse_qs(body.decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0]
        target = _local_path((form.get("next") or ["/"])[0])
        if self.tokens and any(hmac.compare_digest(token, t) for t in self.tokens):
            secure = "; Secure" if scope.get("scheme") == "https" else ""
            await _redirect(send, target, cookie=f"{COOKIE}={session_value(token)}; Path=/; HttpOnly; "
                            f"SameSite=Strict{secure}")
            return
        await _send_html(send, 401, _login_page(scope, "That token is not valid."))

    @staticmethod
    def _with_headers(send: Send) -> Send:
        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [h for h in SECURITY_HEADERS if h[0] not in present]
                if b"content-security-policy" not in present:
                    extra.append((b"content-security-policy", CSP.encode()))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)
        return secured


def _same_origin(headers: dict[str, str], host: str) -> bool:
    """No Origin/Referer (curl, scripts) counts as same-origin; browsers always send one."""
    source = headers.get("origin") or headers.get("referer")
    if source is None:
        return True
    if source == "null":
        return False
    return urlsplit(source).netloc.lower() == host.lower()


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _local_path(target: str) -> str:
    """Only a path on this server (no scheme, no ``//host``) may be a login's destination."""
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"


def _login_page(scope: Scope, message: str | None) -> str:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    target = (query.get("next") or [None])[0]
    if target is None:
        target = scope.get("path", "/") if scope.get("path") != "/login" else "/"
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
    note = f'<p class="error">{html.escape(message)}</p>' if message else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Sign in · MAE Lab</title>
<link rel="stylesheet" href="/static/css/app.css"></head><body><main class="login">
<h1>MAE Lab</h1><p>This server needs a token (the operator set <code>MAE_AUTH_TOKEN</code>).</p>{note}
<form method="post" action="/login"><input type="hidden" name="next" value="{html.escape(_local_path(target))}">
<label>Token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
<button type="submit">Sign in</button></form></main></body></html>"""


async def _answer(send: Send, status: int, kind: str, message: str,
                  extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": kind, "status": status, "message": message}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


async def _send_html(send: Send, status: int, page: str) -> None:
    body = page.encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, target: str, cookie: str) -> None:
    await send({"type": "http.response.start", "status": 303, "headers": [
        (b"location", quote(target, safe="/?=&%:#").encode()), (b"set-cookie", cookie.encode()),
        (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})

"""ASGI middleware guarding the reviewer web app: a strict request body limit, security headers, and a
JSON answer when the server itself fails."""

from __future__ import annotations

import json
import logging

DEFAULT_MAX_BODY_BYTES = 64 * 1024  # a long post-edit and comment fit many times over

# The page loads only its own script, style sheet and API: no inline script, no third-party origin,
# no framing (clickjacking), no form posts elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
NO_STORE = (b"cache-control", b"no-store")  # API answers hold reviewers' items: never cached


async def send_json_error(send, status: int, message: str) -> None:
    """Answer with ``{"error": message}`` and ``status`` straight from the ASGI layer."""
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + list(SECURITY_HEADERS)})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """Refuse a request body over ``max_bytes`` with 413: by its Content-Length before reading, and
    by counting while reading (a chunked upload has no Content-Length).

    The body is read here in full (it is small by construction) and replayed to the app, so the app
    never sees a partial body.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> str:
        return f"The request body is over the limit of {self.max_bytes} bytes; send a shorter post-edit or comment."

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await send_json_error(
                    send, 400, f"Content-Length {declared.decode(errors='replace')!r} is not a number."
                )
                return
            if int(declared) > self.max_bytes:
                await send_json_error(send, 413, self._too_large())
                return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await send_json_error(send, 413, self._too_large())
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # after the body: wait for the client to disconnect

        await self.app(scope, replay, send)


class ServerFailure:
    """Answer an unexpected exception (say, the database went away) with a JSON 500, logged with its
    traceback, and keep serving: Starlette's own handler would re-raise it and drop the connection."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception as exc:
            logging.getLogger(__name__).exception("%s %s failed", scope["method"], scope["path"])
            if started:  # too late for another answer
                raise
            message = f"The server failed: {type(exc).__name__}. Try again; the server log has the details."
            await send_json_error(send, 500, message)


class SecurityHeaders:
    """Add :data:`SECURITY_HEADERS` to every response, and ``Cache-Control: no-store`` to the API's."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(SECURITY_HEADERS) + ([NO_STORE] if scope["path"].startswith("/api/") else [])

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                added = [(name, value) for name, value in extra if name not in present]
                message = message | {"headers": list(message.get("headers", [])) + added}
            await send(message)

        await self.app(scope, receive, send_with_headers)

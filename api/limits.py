"""Refuse oversized bodies with 413 before they are parsed."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from shared.exceptions import PayloadTooLarge


class BodySizeLimit:
    """JSON bodies up to ``max_json``, multipart uploads up to ``max_upload`` (plus framing).

    A declared Content-Length over the limit is answered at once; a chunked body is counted
    as it arrives and raises ``PayloadTooLarge`` (a 413) when it passes the limit.
    """

    MULTIPART_OVERHEAD = 1 << 20

    def __init__(self, app: ASGIApp, *, max_json: int, max_upload: int) -> None:
        self.app = app
        self.max_json = max_json
        self.max_upload = max_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        multipart = headers.get("content-type", "").startswith("multipart/")
        limit = self.max_upload + self.MULTIPART_OVERHEAD if multipart else self.max_json
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            response = error_response(
                413, "payload_too_large", f"The request body is larger than {limit:,} bytes."
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def _receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(f"The request body is larger than {limit:,} bytes.")
            return message

        await self.app(scope, _receive, send)

"""In-process HTTP request counters, exported by ``GET /metrics``."""

from collections import Counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS: Counter[tuple[str, str, int]] = Counter()


class RequestCounter:
    """Counts requests by method, route template (not raw path) and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def _send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS[(scope["method"], route, status)] += 1

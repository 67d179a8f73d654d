"""A small read-and-cancel web dashboard at ``/dashboard`` (the page holds no data: its
script calls the /v1 API with the key the user types, kept in that browser tab only)."""

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["dashboard"])
PAGE = (files("api") / "static" / "dashboard.html").read_text(encoding="utf-8")
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' blob:; form-action 'self'; frame-ancestors 'none'"
)


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
def dashboard() -> HTMLResponse:
    return HTMLResponse(PAGE, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"})

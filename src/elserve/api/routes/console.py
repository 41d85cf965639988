"""The console (an elserve extension): one page at `/_elserve/console`, and `GET /_elserve/errors`.

The page and its two assets ship in the package (`api/console_assets/`) and hold no data, so they
are served to anyone: the page asks for credentials and reads everything through the same REST API
and privileges as any client. A strict Content-Security-Policy keeps the page to its own origin and
its own files: no inline script, no CDN.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Depends, Request, Response

from elserve.api.deps import require
from elserve.api.rendering import render
from elserve.api.rest_error import RestError
from elserve.security.privileges import RECENT_ERRORS

router = APIRouter(prefix="/_elserve")

_ASSETS = {
    "": ("index.html", "text/html; charset=utf-8"),
    "console.js": ("console.js", "text/javascript; charset=utf-8"),
    "console.css": ("console.css", "text/css; charset=utf-8"),
}
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The assets change with the package; a reload after an upgrade must not mix versions.
    "Cache-Control": "no-cache",
}


def _asset(name: str) -> bytes:
    return resources.files("elserve.api").joinpath("console_assets", name).read_bytes()


@router.get("/console", include_in_schema=False)
@router.get("/console/", include_in_schema=False)
@router.get("/console/{asset}", include_in_schema=False)
async def console(request: Request, asset: str = "") -> Response:
    if asset not in _ASSETS:
        raise RestError(f"no handler found for uri [{request.url.path}] and method [{request.method}]", 400)
    file, media_type = _ASSETS[asset]
    return Response(_asset(file), media_type=media_type, headers=_HEADERS)


@router.get("/errors", dependencies=[Depends(require(RECENT_ERRORS))])
async def recent_errors(request: Request) -> Response:
    """The last server-side errors, newest first (`api/recent_errors.py` says which are kept)."""
    return render(request, {"errors": request.app.state.recent_errors.snapshot()})

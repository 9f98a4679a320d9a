"""The demo page's routes: ``/demo`` (the page), ``/demo/{app.js,app.css,push.js,media.js,sw.js}``
(package data; ``sw.js`` is the service worker, with the scope ``/demo``) and
``/demo/vendor/{name}`` (the SDK's browser bundle, from disk)."""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from importlib import resources
from typing import Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from ieum_chat.demo._assets import VENDOR_FILES, DemoSettings, candidate_dirs, find_vendor_dir

__all__ = ["install_demo"]

_PAGE_FILES: Final = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "push.js": "text/javascript; charset=utf-8",
    "media.js": "text/javascript; charset=utf-8",
    "sw.js": "text/javascript; charset=utf-8",
}

# The page's URL carries the member's token: it must never leave in a Referer, nor be
# cached by a shared cache. Scripts and styles come from this server only; images, sound,
# video and uploads may live on object storage (S3 presigned POST, a CDN), and a file being
# uploaded is shown from a blob: URL.
_PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data: blob: http: https:; media-src 'self' blob: http: https:; "
        "connect-src 'self' ws: wss: http: https:; "
        "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}
_ASSET_HEADERS: Final = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
# The service worker lives at /demo/sw.js, so its scope could only be /demo/ (which the page,
# /demo, is outside of); this header lets it take /demo itself.
_WORKER_HEADERS: Final = {**_ASSET_HEADERS, "Service-Worker-Allowed": "/demo"}

_MISSING: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ieum-chat demo: install the browser library</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto">
<h1>The demo page needs its browser library</h1>
<p>The page loads the browser bundle of the <code>@ieum/chat</code> SDK (built in
<code>clients/js</code>) from an npm install of <code>web/</code> (with a lock file). It is not
installed yet. In the ieum-chat checkout, run</p>
<pre>make demo</pre>
<p>(it builds the SDK and runs <code>npm ci</code> in <code>web/</code>, then starts the demo), or
install it alone with</p>
<pre>make web</pre>
<p>and reload this page. To use another install, point <code>IEUM_DEMO_ASSETS</code> at a
<code>node_modules</code> folder holding <code>{files}</code>.</p>
<p>Looked in: {dirs}</p>
<p lang="ko">데모 페이지에 필요한 브라우저 라이브러리가 설치되지 않았습니다.
<code>make demo</code>를 실행한 뒤 새로고침하세요.</p>
</body></html>
"""


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str

    @classmethod
    def load(cls, name: str) -> _Asset:
        body = (resources.files("ieum_chat.demo") / "static" / name).read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        return cls(body, _PAGE_FILES[name], etag)

    def respond(self, request: Request, headers: dict[str, str]) -> Response:
        headers = {**headers, "ETag": self.etag}
        if request.headers.get("if-none-match") == self.etag:
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


def _missing_page(settings: DemoSettings) -> Response:
    dirs = ", ".join(f"<code>{html.escape(str(d))}</code>" for d in candidate_dirs(settings))
    files = "</code>, <code>".join(html.escape(f) for f in VENDOR_FILES.values())
    body = _MISSING.replace("{dirs}", dirs).replace("{files}", files)
    return Response(
        body,
        status_code=503,
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-store"},
    )


def install_demo(app: Starlette, settings: DemoSettings | None = None) -> None:
    """Add the demo routes to ``app``. They need nothing of the app but its URL space."""
    demo = settings or DemoSettings()
    assets = {name: _Asset.load(name) for name in _PAGE_FILES}
    index = assets.pop("index.html")

    async def page(request: Request) -> Response:
        if find_vendor_dir(demo) is None:
            return _missing_page(demo)
        return index.respond(request, _PAGE_HEADERS)

    async def page_asset(request: Request) -> Response:
        asset = assets.get(request.path_params["name"])
        if asset is None:
            return PlainTextResponse("not found", status_code=404)
        name = request.path_params["name"]
        return asset.respond(request, _WORKER_HEADERS if name == "sw.js" else _ASSET_HEADERS)

    async def vendor(request: Request) -> Response:
        relative = VENDOR_FILES.get(request.path_params["name"])
        if relative is None:
            return PlainTextResponse("not found", status_code=404)
        directory = find_vendor_dir(demo)
        if directory is None:
            return PlainTextResponse(
                "the demo's npm packages are not installed: run `make demo`", status_code=404
            )
        return FileResponse(
            directory / relative,
            media_type="text/javascript; charset=utf-8",
            headers=_ASSET_HEADERS,
        )

    app.router.routes.extend(
        [
            Route("/demo", page, methods=["GET", "HEAD"]),
            Route("/demo/", page, methods=["GET", "HEAD"]),
            Route("/demo/vendor/{name}", vendor, methods=["GET", "HEAD"]),
            Route("/demo/{name}", page_asset, methods=["GET", "HEAD"]),
        ]
    )

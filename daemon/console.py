"""`gsvd console`: a web page served by the HTTP gateway at `/` to hear voices, tune them and
follow enrollments.

The page is static files shipped in the package (`console_static/`: HTML, CSS, ES modules and
the AudioWorklet player; no framework, no CDN, no build step) and talks to the daemon only through
the public API any client uses: the JSON routes of http_api.py (`/v1/server`, `/v1/voices`) and
console_runs.py (`/v1/runs`), and the gateway's WebSocket `/v1/ws` for speech. The files
themselves need no token (they hold no data); the page asks for the token once, keeps it in
sessionStorage and sends it with every call, so the console has exactly the gateway's auth.

`register(gateway)` adds all of it to the gateway's aiohttp application: the JSON error
middleware, the voices/server API, the runs API and the static routes.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import web

from gsvd.daemon.console_runs import RunsApi
from gsvd.daemon.http_api import VoicesApi, json_error, json_errors

if TYPE_CHECKING:
    from gsvd.daemon.gateway import Gateway

_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
# the page loads nothing from elsewhere; audio, images and downloads it builds itself are blob: URLs
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache"}


def static_files() -> dict[str, bytes]:
    """The console's files by name, read once from the installed package."""
    folder = resources.files("gsvd.daemon.console_static")
    return {f.name: f.read_bytes() for f in folder.iterdir()
            if f.is_file() and "." + f.name.rsplit(".", 1)[-1] in _TYPES}


def register(gateway: Gateway) -> None:
    """Add the console, its JSON APIs and JSON errors to the gateway's application."""
    files = static_files()

    async def page(request: web.Request) -> web.Response:
        name = request.match_info.get("file", "index.html")
        body = files.get(name)
        if body is None:
            return json_error(404, "NOT_FOUND", f"no console file {name!r}")
        return web.Response(body=body, headers={**_HEADERS, "Content-Type": _TYPES["." + name.rsplit(".", 1)[-1]]})

    gateway.app.middlewares.append(json_errors)
    gateway.app.add_routes([*VoicesApi(gateway).routes(), *RunsApi(gateway).routes(),
                            web.get("/", page), web.get("/console/{file}", page)])

"""Which browser pages may call the HTTP gateway: CSRF, cross-site WebSocket hijacking and DNS rebinding.

Bearer tokens keep other sites out only where they are required: a browser never attaches one on its own. A daemon
without tokens (synthesis open; with --no-auth, voice management too) is reachable from any page the person at the
machine opens, because the browser sends that page's requests to 127.0.0.1 for it: a form POST or a `fetch` with a
"simple" content type (multipart/form-data, text/plain) needs no CORS preflight, and a WebSocket has no same-origin
rule at all. A page that rebinds its own host name to 127.0.0.1 (DNS rebinding) even reads the answers. So the
gateway checks where a browser request comes from (`refusal`, called by a gateway middleware for every request):

- `Origin`, which browsers send with every cross-origin request, every POST/DELETE and every WebSocket handshake,
  must be the gateway's own origin -- its host and port are those of the `Host` the browser addressed: the console's
  page -- or one of `allowed_origins`; any other site, and "null" (sandboxed frames, local files), gets 403.
- Under `/v1/`, `Sec-Fetch-Site: cross-site` without an Origin (an <img>, <audio> or link into the API) gets 403.
- On a loopback bind, a browser's request (one with an `Origin` or `Sec-Fetch-*` header) must address the daemon
  by a loopback name in `Host` (localhost, 127.0.0.0/8, ::1) or by an allowed origin's host: a rebound page
  addresses it by its own name and is refused. (A daemon bound elsewhere is reached by names the operator chose;
  its tokens, which a rebinding page does not have, guard it.)

`allowed_origins = "*"` turns the checks off. Clients that are not browsers send none of these headers and are not
affected; neither are the console's static files opened from a link (they hold no data).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from gsvd.daemon.auth import is_loopback
from gsvd.daemon.errors import PermissionDenied

_HOW = "set allowed_origins (--allowed-origins) to let pages of another site call this daemon"


def refusal(path: str, headers: Mapping[str, str], loopback_bind: bool, allowed: tuple[str, ...]
            ) -> PermissionDenied | None:
    """Why a browser request must be refused (see the module docstring), or None."""
    if "*" in allowed:
        return None
    host = headers.get("Host")
    browser = "Origin" in headers or "Sec-Fetch-Site" in headers or "Sec-Fetch-Mode" in headers
    if loopback_bind and browser and host is not None and not _loopback_host(host) and \
            not any(_netloc(origin) == host.lower() for origin in allowed):
        return PermissionDenied(f"requests to this daemon must address it by a loopback name (localhost, "
                                f"127.0.0.1, [::1]), not {host[:100]!r}; {_HOW}")
    origin = headers.get("Origin")
    if origin is not None:
        sent = origin.strip().lower().rstrip("/")
        own = host is not None and _netloc(sent) == host.strip().lower() and sent.startswith(("http://", "https://"))
        if not own and sent not in allowed:
            return PermissionDenied(f"requests from pages of another origin ({origin[:100]!r}) are refused; {_HOW}")
    elif path.startswith("/v1/") and headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return PermissionDenied(f"requests from pages of another site are refused (no origin was sent); {_HOW}")
    return None


def _netloc(origin: str) -> str:
    """`host[:port]` of an origin ("" when it is not one)."""
    try:
        return urlsplit(origin).netloc
    except ValueError:
        return ""


def _loopback_host(host: str) -> bool:
    """True for a Host header naming a loopback address (any port)."""
    try:
        name = urlsplit("//" + host.strip()).hostname
    except ValueError:
        return False
    return bool(name) and is_loopback(name)

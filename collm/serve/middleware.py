"""Keeping API keys out of URLs and out of the access log.

A key belongs in the Authorization header. Sent in the query string
(`?api_key=...`) it lands in proxies' logs, browser histories and uvicorn's
access log, which prints every request's path with its query. So:

- `QueryCredentials` (ASGI middleware) refuses any request whose query
  carries a credential-looking parameter with a 400 in OpenAI's error shape;
- `ScrubQueryCredentials` (a logging filter, installed on "uvicorn.access"
  by `install_log_scrub`) writes such parameters' values as *** in the log
  records: uvicorn logs the request line after the response, whatever the
  response was, so refusing the request alone would not keep the key out.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qsl, unquote_plus

# query parameters that name a credential (compared case-insensitively)
CREDENTIAL_PARAMS = frozenset({"api_key", "apikey", "api-key", "key", "token", "access_token", "authorization"})
MASK = "***"
ACCESS_LOGGER = "uvicorn.access"


def credential_params(query: str) -> list[str]:
    """The credential-looking parameter names in a raw query string."""
    names = (name for name, _ in parse_qsl(query, keep_blank_values=True))
    return sorted({n for n in names if n.lower() in CREDENTIAL_PARAMS})


def scrub_query(path: str) -> str:
    """`path` (a path with its raw query) with every credential parameter's
    value replaced by ***; names are matched decoded, so `api%5Fkey` counts."""
    head, sep, query = path.partition("?")
    if not sep:
        return path
    parts = []
    for part in query.split("&"):
        name, eq, _ = part.partition("=")
        if unquote_plus(name).lower() in CREDENTIAL_PARAMS:
            part = f"{name}={MASK}"
        parts.append(part)
    return head + "?" + "&".join(parts)


class QueryCredentials:
    """ASGI middleware: a request with a credential in its query string gets
    a 400 before any route sees it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            names = credential_params(scope.get("query_string", b"").decode("latin-1"))
            if names:
                return await _refuse(names, send)
        return await self.app(scope, receive, send)


async def _refuse(names: list[str], send) -> None:
    body = {"error": {"message": f"credentials do not go in the URL (query parameter {', '.join(names)}): "
                                 "send the key in the Authorization header (Authorization: Bearer KEY)",
                      "type": "invalid_request_error", "param": names[0], "code": "credential_in_query"}}
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


class ScrubQueryCredentials(logging.Filter):
    """Masks credential query parameters in a log record's arguments (uvicorn's
    access record: client, method, path with query, HTTP version, status) and
    in its message; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(scrub_query(a) if isinstance(a, str) and "?" in a else a for a in record.args)
        if isinstance(record.msg, str) and "?" in record.msg:
            record.msg = scrub_query_in_text(record.msg)
        return True


def scrub_query_in_text(text: str) -> str:
    """Every whitespace-separated word of `text` that holds a query, scrubbed."""
    return " ".join(scrub_query(w) if "?" in w else w for w in text.split(" "))


def install_log_scrub(logger_name: str = ACCESS_LOGGER) -> None:
    """Put ScrubQueryCredentials on the access logger (once)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, ScrubQueryCredentials) for f in logger.filters):
        logger.addFilter(ScrubQueryCredentials())


def harden(app) -> None:
    """What create_app adds: the query-credential refusal and the log scrub."""
    app.add_middleware(QueryCredentials)
    install_log_scrub()

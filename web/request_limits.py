"""One way to read a request body, for every route that reads one (Click, Payme, webhook).

aiohttp left to itself answers an unsupported `Content-Encoding` with its own 400
text/plain, raises from deep inside the stream on a gzip body that does not decode (the
routes then answered the retryable `-7`/`-32400`, so a provider would retry it forever),
waits forever for a body that never ends, and turns a client that goes away into an
error with a traceback. So the app switches aiohttp's decompression off
(`HANDLER_ARGS`) and reads bodies here: under a size limit and a deadline, decoding gzip
and deflate itself with the same size limit (a small gzip bomb stays small), and
reporting each way a body can fail as one of two exceptions the routes turn into their
protocol's own non-retryable answer with one log line and no traceback.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

from aiohttp import StreamReader, web
from aiohttp.http_exceptions import HttpProcessingError

from web.body import read_bounded

# aiohttp's request handler arguments: bodies are decoded by `read_body`, not by aiohttp;
# after answering a request whose body was cut, aiohttp reads on (so that the client is
# not reset before it reads the answer) for 1 s instead of its default 10 s, so a flood of
# endless bodies does not hold a descriptor each for 10 s more.
HANDLER_ARGS: dict[str, Any] = {"auto_decompress": False, "lingering_time": 1.0}
DEFAULT_BODY_TIMEOUT_SECONDS = 5.0
# The app's body deadline (REQUEST_BODY_TIMEOUT_SECONDS); an app without it (a test's
# own) gets the default.
BODY_TIMEOUT = web.AppKey("body_timeout", float)
IDENTITY = ("", "identity")
ZLIB_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class BodyRefused(Exception):
    """The body cannot be used: too large, too slow, or in an encoding we do not decode.

    `too_large` lets Payme answer `-32600` (its D3) where the rest is `-32700`; `size` is
    how many bytes arrived, for the callback log."""

    def __init__(self, reason: str, *, too_large: bool = False, size: int = 0) -> None:
        super().__init__(reason)
        self.reason, self.too_large, self.size = reason, too_large, size


class ClientGone(Exception):
    """The client closed the connection before its body arrived: nobody reads an answer,
    and it is nobody's error."""


async def read_body(request: web.Request, limit: int) -> bytes:
    """The decoded body, at most `limit` bytes, read within the app's `BODY_TIMEOUT`.

    Raises `BodyRefused` or `ClientGone`; never anything aiohttp raises while reading.
    """
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in IDENTITY and encoding not in ZLIB_WBITS:
        raise BodyRefused(f"unsupported Content-Encoding {encoding[:40]!r}")
    timeout = request.app.get(BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT_SECONDS)
    raw = await _read_raw(request.content, limit, timeout)
    if len(raw) > limit:
        raise BodyRefused(f"body over {limit} bytes", too_large=True, size=len(raw))
    if encoding in IDENTITY:
        return raw
    try:
        return _decompress(raw, ZLIB_WBITS[encoding], limit)
    except BodyRefused as error:
        error.size = len(raw)
        raise


async def _read_raw(content: StreamReader, limit: int, seconds: float) -> bytes:
    try:
        async with asyncio.timeout(seconds):
            return await read_bounded(content, limit)
    except TimeoutError as error:
        raise BodyRefused(f"body not received within {seconds:g} s") from error
    except (ConnectionError, asyncio.IncompleteReadError) as error:
        raise ClientGone(type(error).__name__) from error
    except HttpProcessingError as error:
        # Malformed chunking or a Content-Length the client did not keep; when it is the
        # client going away, answering costs nothing.
        raise BodyRefused(f"body framing: {type(error).__name__}") from error


def _decompress(raw: bytes, wbits: int, limit: int) -> bytes:
    decoder = zlib.decompressobj(wbits)
    try:
        body = decoder.decompress(raw, limit + 1)
    except zlib.error as error:
        raise BodyRefused("body does not decode") from error
    if len(body) > limit:
        raise BodyRefused(f"decoded body over {limit} bytes", too_large=True)
    if not decoder.eof or decoder.unused_data:
        raise BodyRefused("body does not decode")
    return body

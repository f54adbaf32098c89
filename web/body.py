"""Bounded request-body reading shared by the payment callbacks (Click and Payme).

Both references answer an oversized body with their own error, so the routes read the
body themselves instead of letting aiohttp answer 413. One `StreamReader.read(n)` returns
only what has arrived so far, so a body sent in pieces must be read in a loop.
"""

from __future__ import annotations

from aiohttp import StreamReader


async def read_bounded(content: StreamReader, limit: int) -> bytes:
    """Read at most `limit + 1` bytes: enough to know the body is too long, no more."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)

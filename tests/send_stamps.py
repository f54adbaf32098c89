"""`SendStamps`: when each `sendMessage` reaches the Bot API, stamped by a process of its own.

It sits between the instances and the fake Bot API, notes the moment each `sendMessage`
request arrives and forwards the bytes unchanged. The fake's own stamps are taken in the
test process, which also queues notices and runs pytest: on a loaded machine it can be
off the CPU for most of a second and then stamp a second's worth of requests at once.
The stamping process does nothing else and imports nothing of the app (it starts in a
fraction of a second), so it is woken the moment bytes arrive; its clock
(CLOCK_MONOTONIC) is the test's.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.fake_telegram import FakeTelegram

ROOT = Path(__file__).resolve().parent.parent

REQUEST_LINE = b"/sendMessage HTTP/1.1"


class SendStamps:
    """`python -m tests.send_stamps <port>`: the stamping proxy, started and read from here."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process, self.port = process, port
        self.times: list[float] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, target: FakeTelegram) -> SendStamps:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.send_stamps", str(target.server.port),  # type: ignore[attr-defined]
            cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert process.stdout is not None
        port = int((await asyncio.wait_for(process.stdout.readline(), 60)).split()[1])
        return cls(process, port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.times.append(float(line))

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._reader, 5)


async def _stamping_proxy(target_port: int) -> None:
    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, stamp: bool) -> None:
        tail = b""
        try:
            while data := await source.read(65536):
                moment = time.monotonic()
                if stamp:
                    seen = tail + data
                    start = 0
                    while (found := seen.find(REQUEST_LINE, start)) != -1:
                        if found + len(REQUEST_LINE) > len(tail):  # not counted before
                            sys.stdout.write(f"{moment}\n")
                        start = found + 1
                    sys.stdout.flush()
                    tail = seen[-len(REQUEST_LINE) :]
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", target_port
            )
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            pipe(reader, upstream_writer, stamp=True), pipe(upstream_reader, writer, stamp=False)
        )

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"port {port}\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_stamping_proxy(int(sys.argv[1])))

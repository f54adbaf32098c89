"""A throwaway PostgreSQL for a test session that was given none.

Why: README's test command must run the PostgreSQL variants on a fresh machine with
nothing but Python; half the suite (the order-lock tests among them) only proves
anything on PostgreSQL. When TEST_DATABASE_URL is unset and some collected test needs
PostgreSQL, the pip package `pgserver` (its own PostgreSQL binaries, no system service)
starts a server in a temporary folder, TEST_DATABASE_URL points at it for the session,
and the server is stopped and its folder removed at the end. A watchdog process stops
it too if the test process dies without cleaning up (SIGKILL, a crashed interpreter).

When no server can be had the reason is kept and every PostgreSQL test reports it:
skipped with the reason locally, failed under CI (CI or REQUIRE_POSTGRES set), so a
PostgreSQL test never passes silently.

Run as `python -m tests.pg_server watch PID FOLDER` it is the watchdog itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ENV = "TEST_DATABASE_URL"
PARAM = "postgresql"
# pytest's stash keys: where the plugin keeps the server and the reason it has none.
SERVER_KEY = pytest.StashKey["Throwaway | None"]()
REASON_KEY = pytest.StashKey[str]()


@dataclass
class Throwaway:
    """One started server: its URL, its data folder and the watchdog guarding it."""

    url: str
    folder: Path
    handle: Any = field(repr=False)
    watchdog: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started_in: float = 0.0

    def stop(self) -> None:
        try:
            self.handle.cleanup()  # pg_ctl stop -w, then the data folder is deleted
        finally:
            if self.watchdog is not None:
                self.watchdog.terminate()
                self.watchdog.wait(5)
            shutil.rmtree(self.folder, ignore_errors=True)


def start() -> Throwaway:
    """Start a server in a new temporary folder (about 1-2 s); raises on any failure."""
    began = time.monotonic()
    import pgserver  # imported here: only sessions that need PostgreSQL pay for it

    folder = Path(tempfile.mkdtemp(prefix="tariffbot-pg-"))
    # The watchdog first, so that even a kill during initdb leaves nothing behind.
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "tests.pg_server", "watch", str(os.getpid()), str(folder)],
        cwd=Path(__file__).resolve().parent.parent,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C to the test run's process group leaves it alive
    )
    try:
        handle = pgserver.get_server(folder / "data", cleanup_mode="delete")
        # The URI names a Unix socket (pgserver listens on no TCP port, so it never
        # collides with a PostgreSQL already on 5432): postgresql://postgres:@/postgres?host=…
        url = handle.get_uri()
    except BaseException:
        watchdog.terminate()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    server = Throwaway(url=url, folder=folder, handle=handle, watchdog=watchdog)
    server.started_in = time.monotonic() - began
    return server


def needs_postgres(items: list[pytest.Item]) -> bool:
    """True when a collected test runs on PostgreSQL (the `database_url` fixture's
    postgresql variant, or a test asking for `postgres_server_url` itself)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("database_url") == PARAM:
            return True
        if "postgres_server_url" in getattr(item, "fixturenames", ()):
            return True
    return False


def must_run() -> bool:
    """Under CI a PostgreSQL test that cannot run is a failure, not a skip."""
    return bool(os.environ.get("CI") or os.environ.get("REQUIRE_POSTGRES"))


class PostgresPlugin:
    """Starts the throwaway server after collection, stops it at the session's end."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        config = session.config
        config.stash[SERVER_KEY] = None
        if os.environ.get(ENV) or config.option.collectonly:
            return
        if not needs_postgres(session.items):
            config.stash[REASON_KEY] = f"{ENV} is not set and no collected test needs it"
            return
        try:
            server = start()
        except Exception as error:  # every failure becomes the reason the tests report
            reason = f"{type(error).__name__}: {error}".splitlines()[0]
            config.stash[REASON_KEY] = (
                f"{ENV} is not set and pgserver could not start a PostgreSQL: {reason}"
            )
            return
        config.stash[SERVER_KEY] = server
        os.environ[ENV] = server.url
        config.stash[REASON_KEY] = ""

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        return None if os.environ.get(ENV) else f"{ENV} unset: pgserver starts one if needed"

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        server = config.stash.get(SERVER_KEY, None)
        if server is not None:
            terminalreporter.write_line(
                f"PostgreSQL tests ran on a throwaway pgserver PostgreSQL "
                f"(started in {server.started_in:.1f} s, now stopped)"
            )
        elif "could not start" in (reason := config.stash.get(REASON_KEY, "")):
            terminalreporter.write_line(f"!!! PostgreSQL tests did NOT run: {reason}", red=True)

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        server = config.stash.get(SERVER_KEY, None)
        if server is None:
            return
        config.stash[SERVER_KEY] = None
        if os.environ.get(ENV) == server.url:
            del os.environ[ENV]
        server.stop()


def unavailable(config: pytest.Config) -> str:
    """Why a PostgreSQL test cannot run here ("" when it can)."""
    if os.environ.get(ENV):
        return ""
    return config.stash.get(REASON_KEY, f"{ENV} is not set")


def watch(parent: int, folder: Path) -> None:
    """Stop the server under `folder` once `parent` is gone, then remove the folder.

    Polls: the test process may die by SIGKILL, which nothing can intercept."""
    while folder.exists():
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    else:
        return  # the session cleaned up itself
    time.sleep(1)  # an initdb or pg_ctl the parent started may still be finishing
    try:
        postmaster = int((folder / "data" / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGINT)  # PostgreSQL's "fast" shutdown
        for _ in range(100):
            os.kill(postmaster, 0)
            time.sleep(0.1)
    except (OSError, ValueError, IndexError):
        pass
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "watch":
        sys.exit("usage: python -m tests.pg_server watch PID FOLDER")
    watch(int(sys.argv[2]), Path(sys.argv[3]))

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

Under pytest-xdist (README's command runs the suite on several workers) the run shares
one server: the first worker that needs it starts it in a folder named after the run's
id, the others attach to it (pgserver counts the processes using a data folder), and
the last to finish stops it; the watchdog guards the controller process. Each worker
reports to the controller whether it had a server and why not, for the run's summary.

Run as `python -m tests.pg_server watch PID FOLDER` it is the watchdog itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ENV = "TEST_DATABASE_URL"
PARAM = "postgresql"
# pytest's stash keys: where the plugin keeps the server and the reason it has none.
SERVER_KEY = pytest.StashKey["Throwaway | None"]()
REASON_KEY = pytest.StashKey[str]()
# What a worker tells the xdist controller (config.workeroutput); what the controller
# tells each worker (node.workerinput): its pid, which the watchdog guards, and the folder
# of the run's one server.
WORKER_OUTPUT = "tariffbot_pg"
SESSION_PID = "tariffbot_session_pid"
SHARED_FOLDER = "tariffbot_pg_folder"


@dataclass
class Throwaway:
    """One started server: its URL, its data folder and the watchdog guarding it."""

    url: str
    folder: Path
    handle: Any = field(repr=False)
    watchdog: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started_in: float = 0.0
    shared: bool = False  # one server for the workers of an xdist run

    def stop(self) -> None:
        if self.shared:
            self._leave()
            return
        try:
            self.handle.cleanup()  # pg_ctl stop -w, then the data folder is deleted
        finally:
            if self.watchdog is not None:
                self.watchdog.terminate()
                self.watchdog.wait(5)
            shutil.rmtree(self.folder, ignore_errors=True)

    def _leave(self) -> None:
        """A worker is done with the shared server; the last one stops it (pgserver keeps
        the count) and removes the folder, which also ends the watchdog."""
        with _locked(_lock_path(self.folder)):
            try:
                self.handle.cleanup()
            finally:
                if not (self.folder / "data").exists():
                    shutil.rmtree(self.folder, ignore_errors=True)
        if self.watchdog is not None and self.watchdog.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.watchdog.wait(0 if self.folder.exists() else 5)


def _watchdog(session_pid: int, folder: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.pg_server", "watch", str(session_pid), str(folder)],
        cwd=Path(__file__).resolve().parent.parent,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C to the test run's process group leaves it alive
    )


def _lock_path(folder: Path) -> Path:
    return folder.with_name(folder.name + ".lock")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock between the processes of one run (flock on `path`)."""
    with path.open("a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def start() -> Throwaway:
    """Start a server in a new temporary folder (about 1-2 s); raises on any failure."""
    began = time.monotonic()
    import pgserver  # imported here: only sessions that need PostgreSQL pay for it

    folder = Path(tempfile.mkdtemp(prefix="tariffbot-pg-"))
    # The watchdog first, so that even a kill during initdb leaves nothing behind.
    watchdog = _watchdog(os.getpid(), folder)
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


def start_shared(folder: Path, session_pid: int) -> Throwaway:
    """An xdist worker's server: the run's one server in `folder`, started by whichever
    worker comes first (its watchdog guards `session_pid`, the controller), joined by the
    others; the lock file beside `folder` is the controller's to remove."""
    began = time.monotonic()
    import pgserver

    with _locked(_lock_path(folder)):
        first = not folder.exists()
        watchdog = None
        if first:
            folder.mkdir()
            watchdog = _watchdog(session_pid, folder)
        try:
            handle = pgserver.get_server(folder / "data", cleanup_mode="delete")
            url = handle.get_uri()
        except BaseException:
            if first:
                assert watchdog is not None
                watchdog.terminate()
                shutil.rmtree(folder, ignore_errors=True)
            raise
    server = Throwaway(url=url, folder=folder, handle=handle, watchdog=watchdog, shared=True)
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
    """Starts the throwaway server after collection, stops it at the session's end.

    Under xdist the workers collect, so each worker does this (sharing one server) and
    the controller only prints what they report."""

    def __init__(self) -> None:
        self.worker_reports: list[dict[str, Any]] = []
        self.shared_folder: Path | None = None  # the xdist controller's, for its workers

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        config = session.config
        config.stash[SERVER_KEY] = None
        if os.environ.get(ENV) or config.option.collectonly:
            return
        if not needs_postgres(session.items):
            config.stash[REASON_KEY] = f"{ENV} is not set and no collected test needs it"
            return
        workerinput = getattr(config, "workerinput", None)
        try:
            if workerinput is None:
                server = start()
            else:
                server = start_shared(
                    Path(workerinput[SHARED_FOLDER]), int(workerinput[SESSION_PID])
                )
        except Exception as error:  # every failure becomes the reason the tests report
            reason = f"{type(error).__name__}: {error}".splitlines()[0]
            config.stash[REASON_KEY] = (
                f"{ENV} is not set and pgserver could not start a PostgreSQL: {reason}"
            )
            self._tell_controller(config, None)
            return
        config.stash[SERVER_KEY] = server
        os.environ[ENV] = server.url
        config.stash[REASON_KEY] = ""
        self._tell_controller(config, server)

    @staticmethod
    def _tell_controller(config: pytest.Config, server: Throwaway | None) -> None:
        workeroutput = getattr(config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[WORKER_OUTPUT] = {
                "reason": config.stash.get(REASON_KEY, ""),
                "started_in": None if server is None else server.started_in,
                "first": server is not None and server.watchdog is not None,
            }

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist controller: the workers' watchdog guards this process; the run's server,
        if one is needed, lives in one folder named here (not yet created)."""
        if self.shared_folder is None:
            name = f"tariffbot-pg-xdist-{os.getpid()}-{time.time_ns()}"
            self.shared_folder = Path(tempfile.gettempdir()) / name
        node.workerinput[SESSION_PID] = os.getpid()
        node.workerinput[SHARED_FOLDER] = str(self.shared_folder)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist controller: what a finished worker says about its server."""
        report = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT)
        if report is not None:
            self.worker_reports.append(report)

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        return None if os.environ.get(ENV) else f"{ENV} unset: pgserver starts one if needed"

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        server = config.stash.get(SERVER_KEY, None)
        reason = config.stash.get(REASON_KEY, "")
        if self.worker_reports:  # the xdist controller
            started = [r for r in self.worker_reports if r["started_in"] is not None]
            first = [r["started_in"] for r in started if r["first"]]
            failed = [r["reason"] for r in self.worker_reports if "could not start" in r["reason"]]
            if started:
                took = f"started in {first[0]:.1f} s, " if first else ""
                terminalreporter.write_line(
                    f"PostgreSQL tests ran on a throwaway pgserver PostgreSQL "
                    f"({took}shared by {len(started)} workers, stopped by the last)"
                )
            for reason in dict.fromkeys(failed):
                terminalreporter.write_line(f"!!! PostgreSQL tests did NOT run: {reason}", red=True)
        elif server is not None:
            terminalreporter.write_line(
                f"PostgreSQL tests ran on a throwaway pgserver PostgreSQL "
                f"(started in {server.started_in:.1f} s, now stopped)"
            )
        elif "could not start" in reason:
            terminalreporter.write_line(f"!!! PostgreSQL tests did NOT run: {reason}", red=True)

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.shared_folder is not None:  # the xdist controller: its workers are gone
            _lock_path(self.shared_folder).unlink(missing_ok=True)
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
    _lock_path(folder).unlink(missing_ok=True)  # an xdist run's lock, if the last worker died


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "watch":
        sys.exit("usage: python -m tests.pg_server watch PID FOLDER")
    watch(int(sys.argv[2]), Path(sys.argv[3]))

"""Deployment files and the test infrastructure, checked on the files themselves.

Why: nothing runs render.yaml, the Dockerfile or the lock files in this suite, so a typo
or a missing pin would only show on a merchant's first deploy or a fresh machine.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests import pg_server

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")


def pins(name: str) -> dict[str, str]:
    """The `name==version` lines of a compiled requirements file; anything else fails."""
    found: dict[str, str] = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"{name}: not an exact pin: {line!r}"
        found[canonicalize_name(match[1])] = match[2]
    return found


def direct(name: str) -> dict[str, set[str]]:
    """The package names a `.in` file asks for, with the extras asked (-r followed)."""
    names: dict[str, set[str]] = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            for package, extras in direct(line[3:].strip()).items():
                names.setdefault(package, set()).update(extras)
        elif line and not line.startswith("-"):
            spec = Requirement(line)
            names.setdefault(canonicalize_name(spec.name), set()).update(spec.extras)
    return names


@pytest.mark.parametrize("compiled", ["requirements.txt", "requirements-dev.txt"])
def test_every_requested_package_is_pinned(compiled: str) -> None:
    source = compiled.replace(".txt", ".in")
    assert set(direct(source)) <= set(pins(compiled)), (
        f"{source} asks for a package {compiled} lacks"
    )


def test_runtime_and_dev_pins_agree() -> None:
    runtime, dev = pins("requirements.txt"), pins("requirements-dev.txt")
    assert {name: dev.get(name) for name in runtime} == runtime
    assert {"hypothesis", "pgserver", "pip-tools"} <= set(dev)
    assert "openpyxl" in runtime


@pytest.mark.parametrize("compiled", ["requirements.txt", "requirements-dev.txt"])
def test_every_dependency_of_a_pinned_package_is_pinned_too(compiled: str) -> None:
    """The closure: each pinned package's own requirements (markers evaluated here) are
    pinned, so `pip install -r` installs nothing unpinned."""
    pinned = pins(compiled)
    extras = direct(compiled.replace(".txt", ".in"))
    unpinned: dict[str, str] = {}
    for name in pinned:
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # not installed in this environment; pip-compile resolved it
        asked = ["", *extras.get(name, ())]
        for spec in map(Requirement, requires):
            if spec.marker is not None and not any(
                spec.marker.evaluate({"extra": extra}) for extra in asked
            ):
                continue
            if canonicalize_name(spec.name) not in pinned:
                unpinned[spec.name] = name
    assert not unpinned, f"{compiled}: required by a pinned package but not pinned: {unpinned}"


def test_the_pins_are_what_this_environment_runs() -> None:
    """The suite proves the pinned versions, not whatever happens to be installed."""
    different = {}
    for name, version in pins("requirements-dev.txt").items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        if installed != version:
            different[name] = (version, installed)
    assert not different, f"pinned vs installed: {different}"


def test_failures_and_skips_are_listed_at_the_end_of_a_run() -> None:
    addopts = re.search(r'addopts = "([^"]*)"', (ROOT / "pyproject.toml").read_text())
    assert addopts and "-ra" in addopts[1].split()


# --- the throwaway PostgreSQL (tests/pg_server.py) -----------------------------------


STAND_IN_POSTMASTER = (
    "import signal, time; signal.signal(signal.SIGINT, signal.SIG_DFL); time.sleep(60)"
)


def test_the_watchdog_stops_the_server_and_removes_its_folder_when_the_session_dies(
    tmp_path: Path,
) -> None:
    """A stand-in postmaster (a sleeping process named in postmaster.pid) and a stand-in
    session (another sleeping process): killing the session ends both and the folder."""
    folder = tmp_path / "pg"
    (folder / "data").mkdir(parents=True)
    # PostgreSQL handles SIGINT whatever its parent left it; a plain `sleep` would inherit
    # SIG_IGN from a run started in the background of a non-interactive shell.
    postmaster = subprocess.Popen([sys.executable, "-c", STAND_IN_POSTMASTER])
    session = subprocess.Popen(["sleep", "60"])
    (folder / "data" / "postmaster.pid").write_text(f"{postmaster.pid}\n{folder}\n")
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "tests.pg_server", "watch", str(session.pid), str(folder)],
        cwd=ROOT,
    )
    try:
        time.sleep(1)
        assert watchdog.poll() is None and folder.exists()
        session.kill()
        session.wait()
        assert watchdog.wait(15) == 0
        assert postmaster.wait(5) == -signal.SIGINT
        assert not folder.exists()
    finally:
        for process in (postmaster, session, watchdog):
            if process.poll() is None:
                process.kill()


def test_the_watchdog_leaves_when_the_session_cleaned_up(tmp_path: Path) -> None:
    folder = tmp_path / "pg"
    folder.mkdir()
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "tests.pg_server", "watch", str(os.getpid()), str(folder)],
        cwd=ROOT,
    )
    time.sleep(1)
    assert watchdog.poll() is None
    folder.rmdir()
    assert watchdog.wait(10) == 0


def _pytest_without_postgres(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Runs one PostgreSQL test in a child pytest whose `pgserver` cannot start."""
    stub = tmp_path / "stub"
    (stub / "pgserver").mkdir(parents=True, exist_ok=True)
    (stub / "pgserver" / "__init__.py").write_text(
        "def get_server(*args, **kwargs):\n    raise RuntimeError('no postgres binaries here')\n"
    )
    child_env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("CI", "REQUIRE_POSTGRES", pg_server.ENV)
    }
    child_env.update(env, PYTHONPATH=f"{stub}{os.pathsep}{ROOT}")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-n",  # xdist as README's command runs, with fewer workers than its default
            "2",
            "tests/test_migrations_once.py",
        ],
        cwd=ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.slow
def test_a_postgresql_test_that_cannot_run_says_why(tmp_path: Path) -> None:
    local = _pytest_without_postgres(tmp_path)
    assert local.returncode == 0, local.stdout + local.stderr
    assert "SKIPPED" in local.stdout and "no postgres binaries here" in local.stdout
    assert "PostgreSQL tests did NOT run" in local.stdout
    ci = _pytest_without_postgres(tmp_path, CI="true")
    assert ci.returncode == 1, ci.stdout + ci.stderr
    assert "PostgreSQL required (CI)" in ci.stdout and "no postgres binaries here" in ci.stdout


# --- Render, Docker, Procfile ----------------------------------------------------------

SECRETS = {"BOT_TOKEN", "WEBHOOK_SECRET", "CLICK_SECRET_KEY", "PAYME_KEY", "PAYME_TEST_KEY"}


def load_yaml(name: str) -> Any:
    import yaml  # PyYAML, from requirements-dev.txt

    return yaml.safe_load((ROOT / name).read_text())


def settings_in_env_example() -> set[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}


def test_render_declares_the_web_service_and_its_postgresql() -> None:
    blueprint = load_yaml("render.yaml")
    (service,) = blueprint["services"]
    (database,) = blueprint["databases"]
    assert service["type"] == "web" and service["runtime"] == "python"
    assert service["startCommand"] == "python -m web"
    assert service["healthCheckPath"] == "/health"
    assert service["buildCommand"] == "pip install -r requirements.txt"
    env = {var["key"]: var for var in service["envVars"]}
    assert env["DATABASE_URL"] == {
        "key": "DATABASE_URL",
        "fromDatabase": {"name": database["name"], "property": "connectionString"},
    }
    assert set(env) >= SECRETS
    for key in SECRETS | {
        "ADMIN_IDS",
        "CLICK_SERVICE_ID",
        "CLICK_MERCHANT_ID",
        "PAYME_MERCHANT_ID",
    }:
        assert env[key] == {"key": key, "sync": False}, key
    assert set(env) - {"PYTHON_VERSION"} <= settings_in_env_example()


def test_the_procfile_starts_what_render_starts() -> None:
    service = load_yaml("render.yaml")["services"][0]
    assert (ROOT / "Procfile").read_text().strip() == f"web: {service['startCommand']}"


def test_compose_runs_the_image_against_its_own_postgresql() -> None:
    compose = load_yaml("compose.yaml")
    db, bot = compose["services"]["db"], compose["services"]["bot"]
    assert db["image"].startswith("postgres:") and "healthcheck" in db
    assert bot["build"] == "."
    assert bot["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert bot["environment"]["DATABASE_URL"].startswith("postgresql://bot:")
    assert bot["environment"]["DATABASE_URL"].endswith("@db:5432/bot")
    assert set(compose["volumes"]) == {"pgdata"}


def test_the_dockerfile_is_slim_non_root_and_checks_health() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    instructions = [line.split()[0] for line in lines if line and not line.startswith("#")]
    assert next(line for line in lines if line.startswith("FROM")) == "FROM python:3.11-slim"
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    text = (ROOT / "Dockerfile").read_text()
    assert "HEALTHCHECK" in instructions and "/health" in text.split("HEALTHCHECK", 1)[1]
    assert lines[-1] == 'CMD ["python", "-m", "web"]'
    assert "RUN pip install -r requirements.txt" in lines
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored and ".git" in ignored

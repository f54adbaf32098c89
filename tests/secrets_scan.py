"""A pytest plugin: the log filter on the test run's handlers, and a scan of everything
the run captured for the test credentials.

Why: a secret in a log line leaks through paths nobody wrote a log call for (a URL in an
exception, a repr). The suite drives the real app through every path it has, so it is
the place to prove the product's filter (web/log_filter.py) catches them: the filter
sits on pytest's log handlers exactly as `python -m web` puts it on the root handlers,
and after each test the captured log, stdout and stderr are searched for the test token,
keys and webhook secret. One hit fails the session and names the test and the secret's
kind, never its value.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from web.log_filter import SecretsFilter

PLUGIN_NAME = "tariffbot-secrets-scan"


@dataclass(eq=False)  # a plugin must stay hashable: pytest keeps plugins in sets
class SecretsScan:
    """`secrets` maps a label (what the secret is) to its value."""

    secrets: Mapping[str, str]
    hits: list[str] = field(default_factory=list)
    scanned: int = 0

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        plugin = session.config.pluginmanager.get_plugin("logging-plugin")
        handlers = [
            getattr(plugin, name, None)
            for name in ("caplog_handler", "report_handler", "log_file_handler", "log_cli_handler")
        ]
        secrets_filter = SecretsFilter(self.secrets.values())
        for handler in handlers:
            if isinstance(handler, logging.Handler):
                handler.addFilter(secrets_filter)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for title, content in report.sections:
            if not title.startswith("Captured "):
                continue
            self.scanned += 1
            for label, secret in self.secrets.items():
                hit = f"{report.nodeid} ({title}): {label}"
                if secret and secret in content and hit not in self.hits:
                    self.hits.append(hit)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.hits and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.hits:
            terminalreporter.write_line(
                f"secrets scan: {self.scanned} captured sections searched, no credential found"
            )
            return
        terminalreporter.write_sep("=", "secrets scan: a credential reached the output", red=True)
        for hit in self.hits:
            terminalreporter.write_line(hit, red=True)

"""The callback log: one JSON line per provider callback, to stdout and to a file.

Click's reference (§10) fixes what a line holds: the UTC time, the route, the remote
address, the received fields (each cut to 256 characters), our answer's code and note,
and the duration. Secrets never get here because the callers only pass what may be
written: Click's `sign_string` arrives as a `sign_ok` flag (a logged digest would help
anyone brute-force a weak secret offline), and a body that could not be parsed is logged
by its size only. The module knows no provider, so Payme's route writes the same lines.

Writing the log must never change an answer, so every failure here is swallowed (and
reported on stderr by `logging` itself at most).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FIELD_LIMIT = 256


class CallbackLog:
    """Writes each callback's line to the `callbacks` logger (stdout) and, when a path is
    set, to that file through one `logging.FileHandler` opened for the app's lifetime.

    The file handler is opened lazily (`delay=True`): a file that cannot be opened never
    stops the start or changes an answer; `logging` reports the failure on stderr.
    """

    def __init__(self, path: Path | None) -> None:
        self._stdout = logging.getLogger("callbacks")
        self._file: logging.Logger | None = None
        if path is not None:
            # A logger of our own, outside logging's global registry: two apps in one
            # process (tests) never share or duplicate each other's file lines.
            self._file = logging.Logger(f"callbacks:{path}")
            handler = logging.FileHandler(path, encoding="utf-8", delay=True)
            handler.setFormatter(logging.Formatter("%(message)s"))
            self._file.addHandler(handler)

    def write(
        self,
        *,
        route: str,
        remote: str | None,
        started: float,
        fields: Mapping[str, Any] | None,
        body_size: int,
        answer: Mapping[str, Any],
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Write one callback's line.

        `started` is a `time.perf_counter()` value. `fields` is None when the body was
        oversized or unparsable: then only its size is logged. `extra` carries
        provider-specific flags such as Click's `sign_ok`. Never raises: the answer is
        already decided and a log failure must not change it.
        """
        try:
            record: dict[str, Any] = {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "route": route,
                "remote": remote,
            }
            if fields is None:
                record["body_size"] = body_size
            else:
                record["fields"] = {name: _cut(value) for name, value in fields.items()}
            record.update(extra or {})
            record["error"] = answer.get("error")
            record["error_note"] = answer.get("error_note")
            record["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
            self._stdout.info("%s", line)
            if self._file is not None:
                self._file.info("%s", line)
        except Exception as error:
            self._stdout.warning("callback log: line not written: %s", type(error).__name__)

    def close(self) -> None:
        if self._file is not None:
            for handler in self._file.handlers:
                handler.close()


def _cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > FIELD_LIMIT:
        return value[:FIELD_LIMIT]
    return value

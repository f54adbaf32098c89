"""web/callback_log.py: the line's content, its limits, and that it never raises."""

from __future__ import annotations

import json
import time
from pathlib import Path

from web.callback_log import CallbackLog

ANSWER = {"error": -5, "error_note": "User does not exist"}


def test_fields_are_cut_and_the_line_is_appended(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    fields = {"merchant_trans_id": "я" * 300, "amount": "15000"}
    for _ in range(2):
        CallbackLog(path).write(
            route="/click/prepare",
            remote="10.0.0.1",
            started=time.perf_counter(),
            fields=fields,
            body_size=999,
            answer=ANSWER,
            extra={"sign_ok": True},
        )
    first, second = (json.loads(line) for line in path.read_text("utf-8").splitlines())
    assert first["fields"] == {"merchant_trans_id": "я" * 256, "amount": "15000"}
    assert "body_size" not in first
    assert (first["route"], first["remote"], first["sign_ok"]) == (
        "/click/prepare",
        "10.0.0.1",
        True,
    )
    assert (first["error"], first["error_note"]) == (-5, "User does not exist")
    assert first["time"].endswith("+00:00") and first["duration_ms"] >= 0
    assert second["fields"] == first["fields"]


def test_unparsable_body_is_logged_by_size_only(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    CallbackLog(path).write(
        route="/payme", remote=None, started=time.perf_counter(), fields=None,
        body_size=65_537, answer=ANSWER,
    )  # fmt: skip
    [line] = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert line["body_size"] == 65_537 and "fields" not in line


def test_a_failing_file_is_swallowed(tmp_path: Path) -> None:
    CallbackLog(tmp_path).write(
        route="/click/prepare", remote=None, started=time.perf_counter(),
        fields={}, body_size=0, answer=ANSWER,
    )  # fmt: skip

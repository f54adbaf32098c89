"""Payme requests as Payme sends them: JSON-RPC over real HTTP with the Basic header."""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

from aiohttp.test_utils import TestClient

from web.providers.payme.protocol import MESSAGES

KEY = "TEST_KEY_example"  # tests/conftest.py PAYME_ENV
_ids = itertools.count(1000)


def basic(login_and_key: str) -> str:
    return "Basic " + base64.b64encode(login_and_key.encode()).decode()


AUTH = basic(f"Paycom:{KEY}")


class PaymeCaller:
    def __init__(self, client: TestClient) -> None:
        self.client = client

    async def raw(
        self, body: bytes | str, *, auth: str | None = AUTH, method: str = "POST"
    ) -> dict[str, Any]:
        headers = {"Content-Type": "text/json; charset=UTF-8"}
        if auth is not None:
            headers["Authorization"] = auth
        response = await self.client.request(method, "/payme", data=body, headers=headers)
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        answer = await response.json()
        assert answer["jsonrpc"] == "2.0"
        return answer

    async def call(self, method: str, auth: str | None = AUTH, **params: Any) -> dict[str, Any]:
        request_id = next(_ids)
        body = json.dumps({"method": method, "params": params, "id": request_id})
        answer = await self.raw(body, auth=auth)
        assert answer["id"] == request_id
        return answer

    async def result(self, method: str, **params: Any) -> dict[str, Any]:
        answer = await self.call(method, **params)
        assert "error" not in answer, answer
        return answer["result"]


def error_of(answer: dict[str, Any]) -> tuple[int, Any]:
    """(code, data) of an error answer, after checking its message is the reference's."""
    error = answer["error"]
    assert "result" not in answer
    messages = {(code, ru, uz, en) for code, ru, uz, en in MESSAGES.values()}
    message = error["message"]
    assert (error["code"], message["ru"], message["uz"], message["en"]) in messages
    return error["code"], error.get("data")


def account(mti: str) -> dict[str, str]:
    return {"order_id": mti}

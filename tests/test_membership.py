"""`my_chat_member` keeps the reachable flag true: blocked -> False, unblocked -> True."""

from __future__ import annotations

import time

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from db.schema import users
from tests.conftest import Telegram, sender
from tests.fake_telegram import BOT_USER
from web.keys import DATABASE


def member(status: str) -> dict[str, object]:
    """The bot's membership as Telegram reports it (`kicked` carries `until_date`)."""
    return {"status": status, "user": BOT_USER, **({"until_date": 0} if status == "kicked" else {})}


def membership_change(user_id: int, old: str, new: str) -> dict[str, object]:
    return {
        "my_chat_member": {
            "chat": {"id": user_id, "type": "private", "first_name": f"User{user_id}"},
            "from": sender(user_id),
            "date": int(time.time()),
            "old_chat_member": member(old),
            "new_chat_member": member(new),
        }
    }


async def reachable(client: TestClient, user_id: int) -> bool | None:
    async with client.app[DATABASE].transaction() as conn:
        return await conn.scalar(select(users.c.reachable).where(users.c.id == user_id))


async def test_blocking_and_unblocking_the_bot_flip_the_reachable_flag(
    client: TestClient, tg: Telegram
) -> None:
    assert await tg.message(4501, "/start") == 200
    assert await reachable(client, 4501) is True
    assert await tg.send(membership_change(4501, "member", "kicked")) == 200
    assert await reachable(client, 4501) is False
    assert await tg.send(membership_change(4501, "kicked", "member")) == 200
    assert await reachable(client, 4501) is True


async def test_a_first_contact_by_unblocking_creates_a_reachable_user(
    client: TestClient, tg: Telegram
) -> None:
    assert await tg.send(membership_change(4502, "kicked", "member")) == 200
    assert await reachable(client, 4502) is True
    assert await tg.send(membership_change(4502, "member", "kicked")) == 200
    assert await reachable(client, 4502) is False

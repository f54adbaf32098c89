"""What the admin tests share: the seeded shop, the screens an admin sees, button presses.

A real Telegram hands back the message a button sits under as plain text (the HTML
parsed away); `press_on` does the same, because the console reads its search back from
that text.
"""

from __future__ import annotations

import html
import itertools
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from db.clock import to_ms
from db.schema import orders, payments, users
from tests.conftest import Telegram, sender
from tests.fake_telegram import Call, FakeTelegram
from web.keys import DATABASE

ADMIN = 900001
BASE = datetime(2026, 11, 10, 7, 0, tzinfo=UTC)  # 2026-11-10 12:00 Tashkent
TAGS = re.compile(r"</?(b|i|u|s|code|pre)>|<a href=\"[^\"<>&]*\">|</a>")
ENTITIES = re.compile(r"&(lt|gt|amp|quot|#x27);")
_ids = itertools.count(10_000_000)


def plain(text: str) -> str:
    """The HTML text as Telegram shows it (and returns it with a button press)."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def assert_valid_html(text: str) -> None:
    """What Telegram's HTML parser insists on: only its tags, every <, > and & escaped."""
    rest = ENTITIES.sub("", TAGS.sub("", text))
    assert not set(rest) & set("<>&"), rest


def screen(telegram: FakeTelegram, chat_id: int = ADMIN) -> Call:
    """The admin's console message as it stands: the last message sent or edited."""
    calls = [
        call
        for call in telegram.calls
        if call.method in ("sendMessage", "editMessageText")
        and call.params.get("chat_id") == chat_id
    ]
    return calls[-1]


async def press_on(
    tg: Telegram,
    call: Call,
    data: str,
    user_id: int = ADMIN,
    message_id: int = 100,
    *,
    deleted: bool = False,
) -> int:
    """A tap on a button of `call`'s message, shown in the chat as `message_id` (so the
    fake Bot API lets the bot edit it, as Telegram would), or `deleted` there already."""
    if tg.fake is not None and not deleted:
        tg.fake.show(user_id, message_id, plain(call.text))
    return await tg.send(
        {
            "callback_query": {
                "id": str(next(_ids)),
                "from": sender(user_id),
                "chat_instance": "ci",
                "data": data,
                "message": {
                    "message_id": message_id,
                    "date": int(time.time()),
                    "chat": {"id": user_id, "type": "private"},
                    "text": plain(call.text),
                },
            }
        }
    )


def button(call: Call, text: str) -> str:
    return next(b["callback_data"] for b in call.buttons if b["text"] == text)


def shown_ids(call: Call) -> list[int]:
    return [
        int(b["callback_data"].split(":")[1])
        for b in call.buttons
        if b["callback_data"].startswith("as:")
    ]


async def add_user(client: Any, user_id: int, first_name: str, username: str | None) -> None:
    async with client.server.app[DATABASE].transaction() as conn:
        await conn.execute(
            insert(users).values(
                id=user_id, first_name=first_name, username=username, created_at=BASE
            )
        )


async def add_payment(
    client: Any,
    user_id: int,
    *,
    created: datetime,
    amount: int = 1_500_000,
    tariff: str = "PLUS",
    provider: str = "click",
    state: str = "paid",
    test: bool = False,
    order_id: int | None = None,
    cancel_reason: int | None = None,
) -> int:
    """One payment (and its order unless given) written straight to the database."""
    number = next(_ids)
    async with client.server.app[DATABASE].transaction() as conn:
        if order_id is None:
            order_id = (
                await conn.execute(
                    insert(orders)
                    .values(
                        merchant_trans_id=f"{user_id}_{tariff}_{number}",
                        user_id=user_id,
                        tariff=tariff,
                        amount=amount,
                        status="paid" if state in ("paid", "refunded") else "pending",
                        created_at=created,
                    )
                    .returning(orders.c.id)
                )
            ).scalar_one()
        done = state in ("paid", "refunded")
        return int(
            (
                await conn.execute(
                    insert(payments)
                    .values(
                        provider=provider,
                        provider_id=str(number) if provider == "click" else f"{number:024x}",
                        order_id=order_id,
                        amount=amount,
                        state=state,
                        test=test,
                        click_paydoc_id=number + 1 if provider == "click" else None,
                        create_time=to_ms(created),
                        perform_time=to_ms(created) + 1000 if done else None,
                        cancel_time=to_ms(created) + 2000 if state in ("refunded", "cancelled")
                        else None,
                        cancel_reason=cancel_reason,
                        granted_days=30 if done else None,
                    )
                    .returning(payments.c.id)
                )
            ).scalar_one()
        )  # fmt: skip


def days_ago(days: float) -> datetime:
    return BASE - timedelta(days=days)

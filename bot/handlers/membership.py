"""`my_chat_member`: keeps `users.reachable` true to reality when a user blocks or unblocks.

Telegram sends this update when the user stops the bot (status `kicked`) and when they
start it again (`member`). Reminders skip unreachable users, and the notifier learns of a
block on its own too (403), but only this update tells us the user is back.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import JOIN_TRANSITION, LEAVE_TRANSITION, ChatMemberUpdatedFilter
from aiogram.types import ChatMemberUpdated

from db.database import Database
from db.users import set_reachable


async def blocked(event: ChatMemberUpdated, db: Database) -> None:
    async with db.transaction() as conn:
        await set_reachable(conn, event.from_user.id, False)


async def unblocked(event: ChatMemberUpdated, db: Database) -> None:
    async with db.transaction() as conn:
        await set_reachable(conn, event.from_user.id, True)


def create_router() -> Router:
    """A fresh router per dispatcher (a router can be attached only once)."""
    router = Router(name="membership")
    router.my_chat_member.filter(F.chat.type == ChatType.PRIVATE)
    router.my_chat_member.register(blocked, ChatMemberUpdatedFilter(LEAVE_TRANSITION))
    router.my_chat_member.register(unblocked, ChatMemberUpdatedFilter(JOIN_TRANSITION))
    return router

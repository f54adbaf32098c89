"""/broadcast: an admin's message to all users, or to those with a plan active, recently
ended, or of one tariff.

The admin writes the audience after the command and the text on the next lines, as
Telegram HTML; blocks starting `uz:` / `ru:` / `en:` give a text per language. The bot
answers with the message exactly as a recipient gets it, the number of recipients and
Send / Cancel. Every step is a database row (db/broadcasts.py), never memory: any
instance may get the next tap, and a second Send queues nothing. The notifier sends the
rows at the bot's rate and calls `report_progress`, which edits the status message at
most every few seconds and once more at the end.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from html import unescape

from aiogram import Bot, html
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n, ngettext
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.admin.callbacks import BroadcastAction, BroadcastStep
from bot.handlers.navigation import put_in_place
from bot.workers.pacing import Pacer
from db import broadcasts
from db.broadcasts import Audience, Broadcast, BroadcastStatus, Progress, Target
from db.clock import Clock, to_datetime
from db.database import Database
from db.tariffs import Tariff

log = logging.getLogger(__name__)

EDIT_EVERY = timedelta(seconds=3)  # the status message is edited at most this often
MAX_TEXT = 4096  # Telegram's limit on a message's text, after its HTML is parsed
MAX_DAYS = 3650
# Telegram's HTML subset: https://core.telegram.org/bots/api#html-style
TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a",
     "code", "pre", "blockquote", "tg-emoji"}
)  # fmt: skip
TOKEN = re.compile(
    r"<(?P<end>/?)(?P<tag>[a-zA-Z][a-zA-Z0-9-]*)"
    r"(?P<attributes>(?:\s+[a-zA-Z-]+(?:\s*=\s*(?:\"[^\"<>]*\"|'[^'<>]*'|[^\s\"'<>]+))?)*)\s*>"
    r"|&(?:lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});"
    r"|(?P<stray>[<>&])"
)
SPOILER = re.compile(r"""\bclass\s*=\s*["']?tg-spoiler\b""")
LANGUAGE_BLOCK = re.compile(r"^(?P<language>[a-z]{2}):[ \t]*", re.MULTILINE)
# Formatting the admin applied in their Telegram app (bold button, shortcuts) arrives as
# entities, not tags; links, mentions and commands Telegram marks by itself do not count.
FORMATTING = frozenset(
    {"bold", "italic", "underline", "strikethrough", "spoiler", "code", "pre", "text_link",
     "blockquote", "expandable_blockquote", "custom_emoji"}
)  # fmt: skip


class Refused(ValueError):
    """What is wrong with the text, in one line for the admin."""


@dataclass(frozen=True)
class Draft:
    target: Target
    texts: dict[str, str]


def html_problem(text: str) -> str | None:
    """Why Telegram would refuse `text` as HTML (or as too long), or None.

    Checked before anything is stored: a text Telegram refuses would fail for every
    recipient, and sending the tags as plain text would show them to everyone; a one-line
    refusal lets the admin fix it first.
    """
    if not text.strip():
        return _("the text is empty")
    open_tags: list[str] = []
    for token in TOKEN.finditer(text):
        if token["stray"]:
            return _("a stray {char}: write &lt; for <, &gt; for > and &amp; for &").format(
                char=token["stray"]
            )
        tag = (token["tag"] or "").lower()
        if not tag:
            continue  # an entity
        if token["end"]:
            if not open_tags or open_tags.pop() != tag:
                return _("</{tag}> closes no open <{tag}>").format(tag=tag)
            continue
        if tag not in TAGS:
            return _("Telegram has no <{tag}> tag").format(tag=tag)
        if tag == "span" and not SPOILER.search(token["attributes"] or ""):
            return _('<span> needs class="tg-spoiler"')
        open_tags.append(tag)
    if open_tags:
        return _("<{tag}> is never closed").format(tag=open_tags[-1])
    if len(unescape(re.sub(r"<[^>]*>", "", text))) > MAX_TEXT:
        return ngettext(
            "the text is longer than {limit} character",
            "the text is longer than {limit} characters",
            MAX_TEXT,
        ).format(limit=MAX_TEXT)
    return None


def parse_target(words: list[str], tariffs: Mapping[str, Tariff]) -> Target | None:
    """`all`, `active`, `expired N` or a tariff's code (any case); None when unreadable."""
    if not words:
        return None
    first = words[0].lower()
    if first in (Audience.ALL, Audience.ACTIVE) and len(words) == 1:
        return Target(Audience(first))
    if first == Audience.EXPIRED and len(words) == 2 and words[1].isdigit():
        days = int(words[1])
        return Target(Audience.EXPIRED, days) if 1 <= days <= MAX_DAYS else None
    codes = {code.lower(): code for code in tariffs}
    if first in codes and len(words) == 1:
        return Target(Audience.TARIFF, tariff=codes[first])
    return None


def split_texts(body: str, languages: tuple[str, ...]) -> dict[str, str]:
    """One text for all, or one per language when the body starts with `uz:` / `ru:` ..."""
    blocks = [b for b in LANGUAGE_BLOCK.finditer(body) if b["language"] in languages]
    if not blocks or body[: blocks[0].start()].strip():
        return {broadcasts.ANY_LANGUAGE: body.strip()}
    texts: dict[str, str] = {}
    for block, following in zip(blocks, [*blocks[1:], None], strict=True):
        end = following.start() if following else len(body)
        texts[block["language"]] = body[block.end() : end].strip()
    return texts


def typed_html(message: Message) -> str:
    """The message as HTML: the text as typed, tags included; or, when the admin used the
    app's own formatting, that formatting as tags (and anything typed escaped), so what
    the admin saw while writing is what recipients get."""
    if any(entity.type in FORMATTING for entity in message.entities or ()):
        return message.html_text
    return message.text or ""


def read_draft(text: str, tariffs: Mapping[str, Tariff], languages: tuple[str, ...]) -> Draft:
    """The audience from the command's line, the texts from the lines after it."""
    command_line, _newline, body = text.partition("\n")
    target = parse_target(command_line.split()[1:], tariffs)
    if target is None or not body.strip():
        raise Refused(usage())
    texts = split_texts(body, languages)
    for language, value in texts.items():
        problem = html_problem(value)
        if problem is not None:
            where = "" if language == broadcasts.ANY_LANGUAGE else f"{language}: "
            raise Refused(_("Not saved, {problem}.").format(problem=where + problem))
    return Draft(target, texts)


def usage() -> str:
    return _(
        "Usage: /broadcast all | active | expired N | PLUS | PRO, then the text on the "
        "next lines (Telegram HTML; blocks starting uz:, ru:, en: for a text per language)."
    )


def audience_text(target: Target) -> str:
    if target.audience == Audience.ACTIVE:
        return _("users with an active plan")
    if target.audience == Audience.EXPIRED:
        days = target.days or 0
        return ngettext(
            "users whose plan ended within {days} day",
            "users whose plan ended within {days} days",
            days,
        ).format(days=days)
    if target.audience == Audience.TARIFF:
        return _("users with an active {tariff} plan").format(tariff=target.tariff)
    return _("all users")


def preview_text(
    broadcast_id: int,
    draft: Draft,
    counts: Mapping[str | None, int],
    skipped: int,
    default_language: str,
) -> str:
    total = sum(counts.values())
    by_language: dict[str, int] = {}
    for language, count in counts.items():
        key = language or default_language
        by_language[key] = by_language.get(key, 0) + count
    shown = ", ".join(language for language in draft.texts if language != broadcasts.ANY_LANGUAGE)
    lines = [
        _("📣 Broadcast #{id} to {audience}").format(
            id=broadcast_id, audience=audience_text(draft.target)
        ),
        ngettext("{count} recipient", "{count} recipients", total).format(count=total)
        + (f" ({' · '.join(f'{k} {v}' for k, v in sorted(by_language.items()))})" if total else ""),
    ]
    if skipped:
        lines.append(
            ngettext(
                "{count} more blocked the bot and is left out.",
                "{count} more blocked the bot and are left out.",
                skipped,
            ).format(count=skipped)
        )
    lines.append(
        _("Above: the message exactly as it arrives ({languages}).").format(languages=shown)
        if shown
        else _("Above: the message exactly as it arrives.")
    )
    return "\n".join(lines)


def status_text(broadcast: Broadcast, progress: Progress) -> str:
    heads = {
        BroadcastStatus.SENDING: _("📣 Broadcast #{id}: sending"),
        BroadcastStatus.DONE: _("✅ Broadcast #{id}: finished"),
        BroadcastStatus.CANCELLED: _("⛔ Broadcast #{id}: cancelled"),
    }
    head = heads.get(broadcast.status, heads[BroadcastStatus.SENDING])
    counts = (
        _("Sent: {sent} · failed: {failed} · cancelled: {left}")
        if broadcast.status == BroadcastStatus.CANCELLED
        else _("Sent: {sent} · failed: {failed} · left: {left}")
    )
    left = progress.cancelled if broadcast.status == BroadcastStatus.CANCELLED else progress.left
    return "\n".join(
        [
            head.format(id=broadcast.id),
            audience_text(broadcast.target),
            counts.format(sent=progress.sent, failed=progress.failed, left=left),
        ]
    )


def keyboard(broadcast_id: int, confirmed: bool) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if not confirmed:
        send = BroadcastAction(id=broadcast_id, step=BroadcastStep.SEND)
        builder.button(text=_("✅ Send"), callback_data=send)
    cancel = BroadcastAction(id=broadcast_id, step=BroadcastStep.CANCEL)
    builder.button(text=_("Cancel"), callback_data=cancel)
    return builder.as_markup()


async def broadcast_command(
    message: Message,
    db: Database,
    clock: Clock,
    i18n: I18n,
    tariffs: Mapping[str, Tariff],
) -> None:
    """Store the draft and show it: the previews, then the count with Send / Cancel."""
    if message.from_user is None:
        return
    try:
        draft = read_draft(typed_html(message), tariffs, tuple(i18n.available_locales))
    except Refused as refusal:
        await message.answer(html.quote(str(refusal)))
        return
    now = to_datetime(clock())
    async with db.transaction() as conn:
        broadcast_id = await broadcasts.create_draft(
            conn, message.from_user.id, draft.target, draft.texts, now
        )
        counts = await broadcasts.count_by_language(conn, draft.target, now)
        skipped = await broadcasts.unreachable_count(conn, draft.target, now)
    for text in draft.texts.values():
        await message.answer(text)
    summary = preview_text(broadcast_id, draft, counts, skipped, i18n.default_locale)
    await message.answer(summary, reply_markup=keyboard(broadcast_id, confirmed=False))


async def broadcast_action(
    query: CallbackQuery,
    bot: Bot,
    callback_data: BroadcastAction,
    db: Database,
    clock: Clock,
    i18n: I18n,
) -> None:
    """Send: queue the rows once, and the summary becomes the status message. Cancel:
    drop the draft, or stop the sending (its pending rows in one statement)."""
    if not isinstance(query.message, Message):
        await query.answer()
        return
    now = to_datetime(clock())
    chat_id, message_id = query.message.chat.id, query.message.message_id
    async with db.transaction() as conn:
        if callback_data.step == BroadcastStep.SEND:
            queued = await broadcasts.confirm(
                conn, callback_data.id, chat_id, message_id, i18n.current_locale, now
            )
            changed = queued is not None
        else:
            changed = await broadcasts.cancel(conn, callback_data.id, now)
        broadcast = await broadcasts.get_broadcast(conn, callback_data.id)
        progress = await broadcasts.progress(conn, callback_data.id)
    if not changed or broadcast is None:
        await query.answer(_("This broadcast was sent or cancelled already."), show_alert=True)
        return
    await query.answer()
    markup = keyboard(broadcast.id, True) if broadcast.status == BroadcastStatus.SENDING else None
    await put_in_place(query, bot, status_text(broadcast, progress), reply_markup=markup)
    if callback_data.step == BroadcastStep.SEND:
        async with db.transaction() as conn:
            await broadcasts.status_shown(conn, broadcast.id, to_datetime(clock()))


async def report_progress(
    db: Database, bot: Bot, i18n: I18n, pacer: Pacer, clock: Clock, broadcast_id: int
) -> None:
    """After a broadcast row is sent or failed (the notifier calls this): edit the status
    message if its last edit is `EDIT_EVERY` old, and always once when nothing is left.

    Which caller edits is decided by a conditional UPDATE, so several deliveries, or
    instances, never edit it twice at once. A failed edit changes nothing."""
    now = to_datetime(clock())
    async with db.read() as conn:  # most deliveries stop here, without a write
        left = await broadcasts.anything_left(conn, broadcast_id)
        edited = await broadcasts.status_edited_at(conn, broadcast_id)
    if left and edited is not None and edited > now - EDIT_EVERY:
        return
    async with db.transaction() as conn:
        if left:
            if not await broadcasts.take_status_edit(conn, broadcast_id, now, EDIT_EVERY):
                return
        elif not await broadcasts.finish(conn, broadcast_id, now):
            return
        broadcast = await broadcasts.get_broadcast(conn, broadcast_id)
        progress = await broadcasts.progress(conn, broadcast_id)
    if broadcast is None or broadcast.chat_id is None or broadcast.message_id is None:
        return
    language = broadcast.language or i18n.default_locale
    with i18n.context(), i18n.use_locale(language):
        text = status_text(broadcast, progress)
        markup = keyboard(broadcast_id, True) if left else None
    # Counted against the bot's rate like a reply, without queueing behind two seconds
    # of claimed sends: the figures would be that much out of date when shown.
    pacer.reserve(broadcast.chat_id)
    try:
        await bot.edit_message_text(
            text, chat_id=broadcast.chat_id, message_id=broadcast.message_id, reply_markup=markup
        )
    except TelegramAPIError as error:
        log.info("broadcast %s: status message not edited: %s", broadcast_id, error)

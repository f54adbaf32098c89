"""/shop: the admins change a tariff's price, days, texts and visibility from the chat.

Stateless, so several instances can serve one admin: a command such as
`/shop PLUS price 20000` (or the Hide / Show button) stores a pending change in the
database (db/shop.py) and asks Confirm / Cancel; the buttons carry only the change's id.
Only ids in ADMIN_IDS pass; anyone else gets what any unknown command or stale button
gets. A change reaches new orders only: an order keeps the price and days it was made
with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aiogram import Bot, Router, html
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n, ngettext
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.admin.callbacks import ShopCard, ShopDecision, ShopHistory, ShopList, ShopToggle
from bot.admin.handlers import IsAdmin
from bot.handlers.navigation import put_in_place
from bot.texts import format_moment, format_som, tariff_line
from db import shop
from db.clock import Clock, to_datetime
from db.database import Database
from db.money import tiyin_from_som
from db.shop import Change, Field, Status, Value
from db.tariffs import (
    CATALOGUE_LANGUAGES,
    FEATURE_LINES,
    FEATURE_LONGEST,
    TITLE_LONGEST,
    Tariff,
    TariffOverride,
    with_overrides,
)

# The smallest payment Click's and Payme's checkouts take, and the most tariffs.toml and
# TARIFF_<CODE>_PRICE allow (whole so'm).
PRICE_LOWEST_SOM = 1_000
PRICE_HIGHEST_SOM = 100_000_000
DAYS_MOST = 3660
HISTORY_PAGE = 10
GROUPING = re.compile(r"[\s_\u00a0\u202f]")  # 20 000, 20_000: digit grouping


class BadChange(ValueError):
    """What is wrong with a /shop command, in one line for the admin."""


class UnknownField(BadChange):
    """Not a field /shop changes: the answer shows the commands that do."""


def describe(field: Field, value: Value) -> str:
    """A field's value as the admin reads it (texts escaped: an admin typed them)."""
    if field is Field.PRICE:
        assert isinstance(value, int)
        return format_som(value)
    if field is Field.DAYS:
        assert isinstance(value, int)
        return ngettext("{count} day", "{count} days", value).format(count=value)
    if field is Field.HIDDEN:
        return _("hidden") if value else _("shown")
    if field is Field.TITLE:
        return f"«{html.quote(str(value))}»"
    assert isinstance(value, list)
    return " | ".join(html.quote(line) for line in value) or "—"


def field_label(field: Field, language: str | None) -> str:
    labels = {
        Field.PRICE: _("price"),
        Field.DAYS: _("days"),
        Field.HIDDEN: _("visibility"),
        Field.TITLE: _("title ({language})"),
        Field.FEATURES: _("features ({language})"),
    }
    return labels[field].format(language=language)


def change_line(change: Change) -> str:
    return _("{tariff}, {field}: {before} → {after}").format(
        tariff=change.tariff,
        field=field_label(change.field, change.language),
        before=describe(change.field, change.before),
        after=describe(change.field, change.after),
    )


def examples(code: str) -> list[str]:
    """The commands that change a tariff, ready to copy."""
    return [
        f"<code>/shop {code} price 20000</code>",
        f"<code>/shop {code} days 60</code>",
        f"<code>/shop {code} title ru {code}</code>",
        f"<code>/shop {code} features uz … | …</code>",
    ]


def parse_price(text: str) -> int:
    """Whole so'm (`20000`, `20 000`) -> tiyin, within what the providers take."""
    digits = GROUPING.sub("", text)
    if not (digits.isascii() and digits.isdigit()):
        raise BadChange(_("The price must be a whole number of so'm, like 20000."))
    som = int(digits)
    if not PRICE_LOWEST_SOM <= som <= PRICE_HIGHEST_SOM:
        raise BadChange(
            _("The price must be from {lowest} to {highest}.").format(
                lowest=format_som(tiyin_from_som(PRICE_LOWEST_SOM)),
                highest=format_som(tiyin_from_som(PRICE_HIGHEST_SOM)),
            )
        )
    return tiyin_from_som(som)


def parse_days(text: str) -> int:
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= DAYS_MOST):
        raise BadChange(_("Days must be a whole number from 1 to {most}.").format(most=DAYS_MOST))
    return int(text)


def parse_title(text: str) -> str:
    """A title goes into HTML messages as it is written (bot/texts.py), so it may not
    hold HTML's own characters."""
    if not 1 <= len(text) <= TITLE_LONGEST or set(text) & set("<>&"):
        raise BadChange(
            _("The title must be 1 to {longest} characters, without <, > or &.").format(
                longest=TITLE_LONGEST
            )
        )
    return text


def parse_features(text: str) -> list[str]:
    lines = [" ".join(line.split()) for line in re.split(r"[|\n]", text)]
    if (
        not 1 <= len(lines) <= FEATURE_LINES
        or not all(lines)
        or any(len(line) > FEATURE_LONGEST for line in lines)
    ):
        raise BadChange(
            _("Write 1 to {count} lines separated by |, each 1 to {longest} characters.").format(
                count=FEATURE_LINES, longest=FEATURE_LONGEST
            )
        )
    return lines


def first_word(text: str) -> tuple[str, str]:
    """`title ru Плюс` -> (`title`, `ru Плюс`): the rest keeps its line breaks."""
    parts = text.strip().split(None, 1)
    return (parts[0], parts[1].strip()) if len(parts) == 2 else (text.strip(), "")


def parse_change(text: str) -> tuple[Field, str | None, Value]:
    """`price 20000`, `days 60`, `title ru Плюс`, `features uz a | b` (or one line per
    line) -> field, language, value; BadChange says in one line what is wrong."""
    field, rest = first_word(text)
    if field.lower() == Field.PRICE:
        return Field.PRICE, None, parse_price(rest)
    if field.lower() == Field.DAYS:
        return Field.DAYS, None, parse_days(rest)
    if field.lower() not in (Field.TITLE, Field.FEATURES):
        raise UnknownField(_("Cannot read that. Change a tariff like this:"))
    language, value = first_word(rest)
    if language.lower() not in CATALOGUE_LANGUAGES:
        raise BadChange(_("The language must be uz, ru or en."))
    if field.lower() == Field.TITLE:
        return Field.TITLE, language.lower(), parse_title(" ".join(value.split()))
    return Field.FEATURES, language.lower(), parse_features(value)


def list_view(
    catalogue: Mapping[str, Tariff], overrides: Mapping[str, TariffOverride], language: str
) -> tuple[str, InlineKeyboardMarkup]:
    lines = [_("🛒 Shop: the tariffs as buyers see them. A change applies to new orders only.")]
    builder = InlineKeyboardBuilder()
    for code, tariff in with_overrides(catalogue, overrides, language).items():
        hidden = code in overrides and overrides[code].hidden
        lines.append(tariff_line(tariff) + (" " + _("(hidden)") if hidden else ""))
        builder.button(text=code, callback_data=ShopCard(tariff=code))
    builder.button(text=_("📜 History"), callback_data=ShopHistory())
    builder.adjust(len(catalogue), 1)
    return "\n".join(lines), builder.as_markup()


def card_view(
    catalogue: Mapping[str, Tariff],
    overrides: Mapping[str, TariffOverride],
    code: str,
    language: str,
) -> tuple[str, InlineKeyboardMarkup]:
    """One tariff: its figures, its texts in every language, and how to change them."""
    hidden = code in overrides and overrides[code].hidden
    lines = [
        tariff_line(with_overrides(catalogue, overrides, language)[code]),
        _("Hidden: buyers do not see it, and its old buttons are refused.")
        if hidden
        else _("Shown to buyers."),
        "",
    ]
    for text_language in CATALOGUE_LANGUAGES:
        tariff = with_overrides(catalogue, overrides, text_language)[code]
        lines.append(
            f"{text_language}: «{html.quote(tariff.title)}» — "
            + describe(Field.FEATURES, list(tariff.features.get(text_language, ())))
        )
    lines += ["", _("Change it:"), *examples(code)]
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("Show to buyers") if hidden else _("Hide from buyers"),
        callback_data=ShopToggle(tariff=code, hidden=not hidden),
    )
    builder.button(text=_("📜 History"), callback_data=ShopHistory())
    builder.button(text=_("◀ All tariffs"), callback_data=ShopList())
    builder.adjust(1)
    return "\n".join(lines), builder.as_markup()


async def read_card(
    db: Database, catalogue: Mapping[str, Tariff], code: str, language: str
) -> tuple[str, InlineKeyboardMarkup]:
    async with db.read() as conn:
        overrides = await shop.load_overrides(conn)
    return card_view(catalogue, overrides, code, language)


def question(change: Change) -> tuple[str, InlineKeyboardMarkup]:
    text = "\n".join(
        [
            change_line(change),
            _("Applies to new orders only: orders made before keep their price and days."),
        ]
    )
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("✅ Confirm"), callback_data=ShopDecision(change_id=change.id, confirm=True)
    )
    builder.button(
        text=_("✖ Cancel"), callback_data=ShopDecision(change_id=change.id, confirm=False)
    )
    builder.adjust(2)
    return text, builder.as_markup()


async def ask(
    db: Database,
    clock: Clock,
    admin_id: int,
    catalogue: Mapping[str, Tariff],
    code: str,
    change: tuple[Field, str | None, Value],
) -> tuple[str, InlineKeyboardMarkup | None]:
    """Store the change as pending and ask; nothing to ask when it changes nothing."""
    field, language, after = change
    async with db.transaction() as conn:
        overrides = await shop.load_overrides(conn)
        before = shop.current_value(catalogue, overrides, code, field, language)
        if before == after:
            return _("Nothing to change: the {field} is {value} already.").format(
                field=field_label(field, language), value=describe(field, after)
            ), None
        pending = await shop.propose(
            conn, admin_id, code, field, language, before, after, to_datetime(clock())
        )
    return question(pending)


async def shop_command(
    message: Message,
    command: CommandObject,
    db: Database,
    clock: Clock,
    catalogue: Mapping[str, Tariff],
    i18n: I18n,
) -> None:
    """`/shop`, `/shop PLUS`, `/shop PLUS price 20000` and the other changes."""
    words = (command.args or "").split()
    if not words:
        async with db.read() as conn:
            overrides = await shop.load_overrides(conn)
        text, markup = list_view(catalogue, overrides, i18n.current_locale)
        await message.answer(text, reply_markup=markup)
        return
    code = words[0].upper()
    if code not in catalogue:
        await message.answer(
            _("Unknown tariff {code}. Tariffs: {codes}.").format(
                code=html.quote(words[0]), codes=", ".join(catalogue)
            )
        )
        return
    if len(words) == 1:
        text, markup = await read_card(db, catalogue, code, i18n.current_locale)
        await message.answer(text, reply_markup=markup)
        return
    try:
        change = parse_change(first_word(command.args or "")[1])
    except BadChange as error:
        lines = [
            html.quote(str(error)),
            *(examples(code) if isinstance(error, UnknownField) else []),
        ]
        await message.answer("\n".join(lines))
        return
    assert message.from_user is not None  # IsAdmin let it through
    text, answer_markup = await ask(db, clock, message.from_user.id, catalogue, code, change)
    await message.answer(text, reply_markup=answer_markup)


async def list_button(
    query: CallbackQuery, bot: Bot, db: Database, catalogue: Mapping[str, Tariff], i18n: I18n
) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        async with db.read() as conn:
            overrides = await shop.load_overrides(conn)
        text, markup = list_view(catalogue, overrides, i18n.current_locale)
        await put_in_place(query, bot, text, reply_markup=markup)


async def card_button(
    query: CallbackQuery,
    bot: Bot,
    callback_data: ShopCard,
    db: Database,
    catalogue: Mapping[str, Tariff],
    i18n: I18n,
) -> None:
    await query.answer()
    if isinstance(query.message, Message) and callback_data.tariff in catalogue:
        text, markup = await read_card(db, catalogue, callback_data.tariff, i18n.current_locale)
        await put_in_place(query, bot, text, reply_markup=markup)


async def toggle_button(
    query: CallbackQuery,
    bot: Bot,
    callback_data: ShopToggle,
    db: Database,
    clock: Clock,
    catalogue: Mapping[str, Tariff],
) -> None:
    """Hide / Show: asked and confirmed like any other change, in the card's message."""
    await query.answer()
    if not isinstance(query.message, Message) or callback_data.tariff not in catalogue:
        return
    change = (Field.HIDDEN, None, callback_data.hidden)
    text, markup = await ask(db, clock, query.from_user.id, catalogue, callback_data.tariff, change)
    await put_in_place(query, bot, text, reply_markup=markup)


async def decision_button(
    query: CallbackQuery,
    bot: Bot,
    callback_data: ShopDecision,
    db: Database,
    clock: Clock,
    catalogue: Mapping[str, Tariff],
    i18n: I18n,
) -> None:
    """Confirm applies the change once (a second tap, here or on another instance, is
    told it was decided already); Cancel drops it. Either way the card follows."""
    async with db.transaction() as conn:
        decision = await shop.decide(
            conn,
            callback_data.change_id,
            query.from_user.id,
            callback_data.confirm,
            catalogue,
            to_datetime(clock()),
        )
    if decision is None or decision.change.tariff not in catalogue:
        await query.answer(_("This button is out of date. Send /shop to start again."))
        return
    change = decision.change
    outcome = {
        Status.APPLIED: _("✅ Applied: {change}"),
        Status.CANCELLED: _("✖ Cancelled: {change}"),
        Status.OUTDATED: _("Not applied: the {field} changed meanwhile. Send the command again."),
    }.get(change.status, "{change}")
    if not decision.decided_now:
        already = {
            Status.APPLIED: _("This change was applied already."),
            Status.CANCELLED: _("This change was cancelled already."),
        }.get(change.status, _("This change was not applied."))
        await query.answer(already, show_alert=True)
        return
    await query.answer()
    if isinstance(query.message, Message):
        card, markup = await read_card(db, catalogue, change.tariff, i18n.current_locale)
        done = outcome.format(
            change=change_line(change), field=field_label(change.field, change.language)
        )
        await put_in_place(query, bot, f"{done}\n\n{card}", reply_markup=markup)


def history_view(changes: list[Change], older_than: int) -> tuple[str, InlineKeyboardMarkup]:
    """A page of the audit log: when (Tashkent), who, what, before → after."""
    page = changes[:HISTORY_PAGE]
    lines = [_("📜 Changes to the shop, newest first:")]
    if not page:
        lines.append(_("No changes yet."))
    for change in page:
        assert change.decided_at is not None  # applied
        who = html.quote(change.admin_name or "") + f" ({change.admin_id})"
        lines += ["", f"{format_moment(change.decided_at)} · {who.strip()}", change_line(change)]
    builder = InlineKeyboardBuilder()
    if older_than:
        builder.button(text=_("◀ Newest"), callback_data=ShopHistory())
    if len(changes) > HISTORY_PAGE:
        builder.button(text=_("Older ▶"), callback_data=ShopHistory(older_than=page[-1].id))
    back = InlineKeyboardBuilder()
    back.button(text=_("◀ All tariffs"), callback_data=ShopList())
    builder.attach(back)
    return "\n".join(lines), builder.as_markup()


async def history_button(
    query: CallbackQuery, bot: Bot, callback_data: ShopHistory, db: Database
) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        async with db.read() as conn:
            changes = await shop.history(conn, callback_data.older_than, HISTORY_PAGE + 1)
        text, markup = history_view(changes, callback_data.older_than)
        await put_in_place(query, bot, text, reply_markup=markup)


def create_router() -> Router:
    """A fresh router per dispatcher; admins only."""
    router = Router(name="shop")
    router.message.filter(IsAdmin())
    router.callback_query.filter(IsAdmin())
    router.message.register(shop_command, Command("shop"))
    router.callback_query.register(list_button, ShopList.filter())
    router.callback_query.register(card_button, ShopCard.filter())
    router.callback_query.register(toggle_button, ShopToggle.filter())
    router.callback_query.register(decision_button, ShopDecision.filter())
    router.callback_query.register(history_button, ShopHistory.filter())
    return router

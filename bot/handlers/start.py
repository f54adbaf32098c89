"""/start, /language and /help: greeting, language choice, the command list."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot import keyboards
from bot.callbacks import LanguageCallback, MenuCallback
from bot.commands import set_chat_menu
from bot.handlers.navigation import show_in_place
from bot.handlers.support import Support, contact_line
from bot.languages import suggested_language
from bot.texts import LANGUAGE_NAMES
from db.database import Database
from db.users import User, set_language


def greeting() -> str:
    return _(
        "Welcome! Here you can buy a subscription and pay for it with Click or Payme.\n"
        "Choose a tariff below or send /help."
    )


async def start(
    message: Message, user: User, i18n: I18n, bot: Bot, admin_ids: frozenset[int]
) -> None:
    if user.id in admin_ids:
        # Admins get their menu (with the admin commands) as soon as they start the bot.
        await set_chat_menu(bot, message.chat.id, admin=True)
    if user.language is None:
        language = suggested_language(message.from_user, i18n.default_locale)
        await message.answer(
            _("Welcome! Please choose your language:"), reply_markup=keyboards.languages(language)
        )
        return
    await message.answer(greeting(), reply_markup=keyboards.main_menu())


async def choose_language(message: Message, i18n: I18n) -> None:
    await message.answer(
        _("Choose your language:"), reply_markup=keyboards.languages(i18n.current_locale)
    )


async def language_chosen(
    query: CallbackQuery,
    callback_data: LanguageCallback,
    user: User,
    db: Database,
    i18n: I18n,
    bot: Bot,
    admin_ids: frozenset[int],
) -> None:
    """Saves the choice, answers in the new language and sets the chat's menu in it."""
    first_time = user.language is None
    async with db.transaction() as conn:
        await set_language(conn, user.id, callback_data.code)
    with i18n.use_locale(callback_data.code):
        chosen = _("Language: English")
        text = greeting() if first_time else chosen
        await show_in_place(query, bot, text, keyboards.main_menu(), toast=chosen)
        chat_id = query.message.chat.id if query.message else user.id
        await set_chat_menu(bot, chat_id, admin=user.id in admin_ids)


async def home(query: CallbackQuery, bot: Bot) -> None:
    """Back: the main menu, on the message tapped."""
    await show_in_place(query, bot, greeting(), keyboards.main_menu())


async def help_command(
    message: Message, user: User, admin_ids: frozenset[int], support: Support
) -> None:
    text = _(
        "What I can do:\n"
        "/tariffs — plans and prices, buy a plan\n"
        "/myplan — your current plan and its end\n"
        "/paysupport — help with a payment\n"
        "/terms — terms of service\n"
        "/language — change the language\n"
        "/help — this message\n\n"
        "You pay with Click or Payme; the plan starts as soon as the payment "
        "is confirmed, and I will send you a receipt."
    )
    text += "\n" + contact_line(support)
    if user.id in admin_ids:
        text += "\n\n" + _(
            "Admin commands:\n"
            "/payments — payments: search, details, Click refunds\n"
            "/stats — revenue and subscribers\n"
            "/export — payments as a CSV file"
        )
        text += "\n" + _("/user — a buyer's card: plan, payments, gifts")
        text += "\n" + _("/shop — tariffs: prices, days, texts, hide or show")
        text += "\n" + _("/broadcast — a message to all or some users")
        text += "\n" + _("/notices — payment notices: at once or a daily digest")
    await message.answer(text, reply_markup=keyboards.back())


def create_router() -> Router:
    """A fresh router per dispatcher (a router can be attached only once)."""
    router = Router(name="start")
    router.message.register(start, CommandStart())
    router.message.register(choose_language, Command("language"))
    router.callback_query.register(
        language_chosen, LanguageCallback.filter(F.code.in_(LANGUAGE_NAMES))
    )
    router.message.register(help_command, Command("help"))
    router.callback_query.register(home, MenuCallback.filter(F.action == "home"))
    return router

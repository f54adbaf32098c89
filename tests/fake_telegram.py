"""A fake Telegram Bot API server for tests: real HTTP on 127.0.0.1, Telegram's answers.

A real aiogram `Bot` is pointed at it through `TELEGRAM_API_URL`, so serialization,
the session and aiogram's error mapping all run for real. Tests script failures per chat
(blocked, 429 with `retry_after`) or for everyone (an outage of N answers with 5xx).

Texts sent with `parse_mode=HTML` are parsed as Telegram parses them (`check_html`
below): malformed HTML gets Telegram's 400 "can't parse entities", so an escaping bug
fails a test instead of a user's message.

Edits fail as Telegram's do: a message the fake never sent (nor a test showed, `show`)
or one deleted (`deleteMessage`, or the buyer through `delete`) is "message to edit not
found", and an edit that changes neither text nor buttons is "message is not modified",
so the bot's fallbacks for both run in tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_USER = {
    "id": 7000000001,
    "is_bot": True,
    "first_name": "Tariff Bot",
    "username": "example_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)
    ok: bool = False  # set when the answer was a success

    @property
    def text(self) -> str:
        return str(self.params.get("text") or self.params.get("caption") or "")

    @property
    def buttons(self) -> list[dict[str, Any]]:
        markup = self.params.get("reply_markup") or {}
        return [button for row in markup.get("inline_keyboard", []) for button in row]


class FakeTelegram:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.blocked: set[int] = set()
        self.deactivated: set[int] = set()
        self.not_found: set[int] = set()  # chats answered 400 "chat not found"
        self.send_latency = 0.0  # seconds every send* call takes to answer (a real round trip)
        self.retry_after: dict[int, int] = {}  # chat id -> seconds, answered once
        self.outage = 0  # number of next sendMessage calls answered with 502
        self.unauthorized = False  # every call answered 401, as for a revoked token
        self.webhook_url = ""
        self.updates: list[dict[str, Any]] = []  # handed out once by getUpdates (polling)
        # (chat id, message id) -> what the chat shows: text or caption, and the markup.
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._message_ids = itertools.count(100)
        self._changed = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self.app.router.add_route("*", "/file/bot{token}/{path:.*}", self._file)

    def delivered(self, chat_id: int | None = None) -> list[Call]:
        """sendMessage calls that Telegram answered with OK (what the user actually got)."""
        return [call for call in self.of("sendMessage", chat_id) if call.ok]

    def show(self, chat_id: int, message_id: int, text: str = "…") -> None:
        """A message in the chat that the fake did not send (one a test taps a button on)."""
        self.messages.setdefault((chat_id, message_id), {"text": text, "reply_markup": None})

    def delete(self, chat_id: int, message_id: int) -> None:
        """The buyer deletes a message in the app: later edits of it fail."""
        del self.messages[(chat_id, message_id)]

    def of(self, method: str, chat_id: int | None = None) -> list[Call]:
        return [
            call
            for call in self.calls
            if call.method == method and (chat_id is None or call.params.get("chat_id") == chat_id)
        ]

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] = lambda _: True,
        within: float = 10,
        since: int = 0,
    ) -> Call:
        """The first recorded call of `method` matching `predicate`, waiting if needed.

        `since` skips the calls recorded before that index (a long run's history).
        """
        deadline = time.monotonic() + within
        while True:
            for call in self.calls[since:]:
                if call.method == method and predicate(call):
                    return call
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {method} call arrived within {within}s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def _file(self, request: web.Request) -> web.Response:
        return web.Response(status=404)

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        arrived = time.monotonic()  # before the body is read: as close to the wire as it gets
        params = await _read_params(request)
        call = Call(method, params, arrived)
        self.calls.append(call)
        self._changed.set()
        if method == "getUpdates" and not self.updates:
            await asyncio.sleep(0.5)  # long polling: an empty answer comes after a wait
        if method.startswith("send") and self.send_latency:
            await asyncio.sleep(self.send_latency)
        if self.unauthorized:
            error = {"ok": False, "error_code": 401, "description": "Unauthorized"}
            return web.json_response(error, status=401)
        error = (
            self._scripted_error(method, params)
            or _html_error(params)
            or self._message_error(method, params)
        )
        if error is not None:
            return web.json_response(error, status=error["error_code"])
        call.ok = True
        return web.json_response({"ok": True, "result": self._result(method, params)})

    def _scripted_error(self, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        chat_id = params.get("chat_id")
        if not method.startswith("send"):
            return None
        if self.outage > 0:
            self.outage -= 1
            return {"ok": False, "error_code": 502, "description": "Bad Gateway"}
        if chat_id in self.blocked:
            return {
                "ok": False,
                "error_code": 403,
                "description": "Forbidden: bot was blocked by the user",
            }
        if chat_id in self.deactivated:
            return {"ok": False, "error_code": 403, "description": "Forbidden: user is deactivated"}
        if chat_id in self.not_found:
            return {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
        if chat_id in self.retry_after:
            seconds = self.retry_after.pop(chat_id)
            return {
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {seconds}",
                "parameters": {"retry_after": seconds},
            }
        return None

    def _message_error(self, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """Telegram's 400 for an edit or delete of a message the chat does not show, and
        for an edit that changes nothing."""
        if not (method.startswith("edit") or method == "deleteMessage") or "chat_id" not in params:
            return None
        shown = self.messages.get((int(params["chat_id"]), int(params["message_id"])))
        if shown is None:
            verb = "delete" if method == "deleteMessage" else "edit"
            return _bad_request(f"message to {verb} not found")
        if method.startswith("edit") and _content(method, params, shown) == shown:
            return _bad_request(
                "message is not modified: specified new message content and reply markup "
                "are exactly the same as a current content and reply markup of the message"
            )
        return None

    def _result(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getMe":
            return BOT_USER
        if method == "getWebhookInfo":
            return {
                "url": self.webhook_url,
                "has_custom_certificate": False,
                "pending_update_count": 0,
            }
        if method == "setWebhook":
            self.webhook_url = params["url"]
            return True
        if method == "deleteWebhook":
            self.webhook_url = ""
            return True
        if method == "getUpdates":
            updates, self.updates = self.updates, []
            return updates
        if method == "deleteMessage":
            del self.messages[(int(params["chat_id"]), int(params["message_id"]))]
            return True
        if method.startswith("send") or method.startswith("edit"):
            message = self._message(method, params)
            key = (message["chat"]["id"], message["message_id"])
            self.messages[key] = _content(method, params, self.messages.get(key, {}))
            return message
        return True

    def _message(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        message: dict[str, Any] = {
            "message_id": int(params.get("message_id") or next(self._message_ids)),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
            "from": BOT_USER,
        }
        if "text" in params:
            message["text"] = params["text"]
        if "reply_markup" in params:
            message["reply_markup"] = params["reply_markup"]
        if method == "sendPhoto":
            message["photo"] = [
                {"file_id": "photo1", "file_unique_id": "p1", "width": 800, "height": 400}
            ]
        if method == "sendDocument":
            message["document"] = {"file_id": "doc1", "file_unique_id": "d1"}
        if "caption" in params:
            message["caption"] = params["caption"]
        return message


def _bad_request(reason: str) -> dict[str, Any]:
    return {"ok": False, "error_code": 400, "description": f"Bad Request: {reason}"}


def _content(method: str, params: dict[str, Any], shown: dict[str, Any]) -> dict[str, Any]:
    """What the chat shows after `method`: an edit of the buttons keeps the text, any
    other edit or send replaces both (an edit without `reply_markup` removes the buttons)."""
    text = params.get("text", params.get("caption"))
    if method == "editMessageReplyMarkup":
        text = shown.get("text")
    return {"text": text, "reply_markup": params.get("reply_markup") or None}


def _html_error(params: dict[str, Any]) -> dict[str, Any] | None:
    """Telegram's answer to a text or caption whose HTML does not parse, else None."""
    if str(params.get("parse_mode", "")).upper() != "HTML":
        return None
    for name in ("text", "caption"):
        value = params.get(name)
        if isinstance(value, str):
            try:
                check_html(value)
            except HtmlError as error:
                description = f"Bad Request: can't parse entities: {error}"
                return {"ok": False, "error_code": 400, "description": description}
    return None


class HtmlError(ValueError):
    """What Telegram says after "can't parse entities: "."""


# Telegram's HTML: these tags and, per tag, the attributes it reads (others are ignored).
HTML_TAGS = {
    "b": (), "strong": (), "i": (), "em": (), "u": (), "ins": (), "s": (), "strike": (),
    "del": (), "span": ("class",), "tg-spoiler": (), "a": ("href",), "code": ("class",),
    "pre": (), "blockquote": ("expandable",), "tg-emoji": ("emoji-id",),
}  # fmt: skip
HTML_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")
HTML_TAG = re.compile(r"<(/?)([^\s>/]*)([^>]*)>")
HTML_ATTRIBUTE = re.compile(r"\s*([a-zA-Z-]+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?")


def check_html(text: str) -> None:
    """Raises `HtmlError` where Telegram's parser refuses the text (parse_mode HTML).

    Unknown or unclosed tags, a stray `<` or `>`-less tag, an end tag that closes
    nothing or the wrong tag, `<span>` without `class="tg-spoiler"`, and unknown
    entities are refused as Telegram refuses them. A bare `&` (Telegram keeps it as a
    character) is refused too: text that needs no escaping has none, and an unescaped
    `&` in a name would let `&lt;` show as `<`.
    """
    open_tags: list[str] = []
    position = 0
    while position < len(text):
        char = text[position]
        offset = len(text[:position].encode())
        if char == "&":
            entity = HTML_ENTITY.match(text, position)
            if entity is None:
                raise HtmlError(f"Unsupported HTML entity at byte offset {offset}")
            position = entity.end()
            continue
        if char != "<":
            position += 1
            continue
        tag = HTML_TAG.match(text, position)
        if tag is None:
            raise HtmlError(f"Unclosed start tag at byte offset {offset}")
        closing, name, rest = tag.group(1), tag.group(2).lower(), tag.group(3)
        if closing:
            if not open_tags:
                raise HtmlError(f"Unexpected end tag at byte offset {offset}")
            if name != open_tags[-1]:
                raise HtmlError(
                    f'Unmatched end tag at byte offset {offset}, expected "</{open_tags[-1]}>",'
                    f' found "</{name}>"'
                )
            open_tags.pop()
        else:
            if name not in HTML_TAGS:
                raise HtmlError(f'Unsupported start tag "{name}" at byte offset {offset}')
            attributes = _html_attributes(rest.rstrip("/"), name, offset)
            if name == "span" and attributes.get("class") != "tg-spoiler":
                raise HtmlError(f'Tag "span" must have class "tg-spoiler" at byte offset {offset}')
            for value in attributes.values():
                check_html(value)  # attribute values are HTML-decoded too
            open_tags.append(name)
        position = tag.end()
    if open_tags:
        raise HtmlError(f'Can\'t find end tag corresponding to start tag "{open_tags[-1]}"')


def _html_attributes(source: str, tag: str, offset: int) -> dict[str, str]:
    attributes: dict[str, str] = {}
    position = 0
    while source[position:].strip():
        attribute = HTML_ATTRIBUTE.match(source, position)
        if attribute is None or attribute.end() == position:
            raise HtmlError(f'Empty attribute name in the tag "{tag}" at byte offset {offset}')
        value = attribute.group(2) or ""
        attributes[attribute.group(1).lower()] = value.strip("\"'")
        position = attribute.end()
    return attributes


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Form or multipart fields; JSON-looking values (markup, ids) are decoded like Telegram."""
    params: dict[str, Any] = {}
    if request.content_type == "application/json":
        return await request.json()
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        async for part in reader:
            if part.filename:
                params[part.name] = {"filename": part.filename, "data": await part.read()}
            else:
                params[part.name] = _decode(await part.text())
        # Files travel as separate parts referenced by `attach://<name>`, as Telegram reads them.
        for name, value in list(params.items()):
            if isinstance(value, str) and value.startswith("attach://"):
                params[name] = params.pop(value.removeprefix("attach://"))
        return params
    form = await request.post()
    return {name: _decode(str(value)) for name, value in form.items()}


def _decode(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value

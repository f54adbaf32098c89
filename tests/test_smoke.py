from tests.fake_telegram import FakeTelegram


async def test_start_asks_language(tg, telegram: FakeTelegram) -> None:
    assert await tg.message(111, "/start", language="ru") == 200
    call = await telegram.wait_for("sendMessage")
    print(call.params)
    assert call.params["chat_id"] == 111

"""Click's wire functions without HTTP: the reference's Examples A and B."""

from __future__ import annotations

import hashlib

import pytest

from db.money import parse_som as tiyin
from web.providers.click.protocol import (
    COMPLETE,
    PREPARE,
    ClickRequest,
    Malformed,
    answer,
    parse_form,
    parse_request,
    signature,
    signature_matches,
)
from web.providers.click.settings import ClickSettings

EXAMPLE_A = (
    "click_trans_id=2854711398&service_id=28420&click_paydoc_id=3390123456"
    "&merchant_trans_id=123456_PLUS_1730034567&amount=15000.00&action=0&error=0"
    "&error_note=Success&sign_time=2024-10-27+18%3A02%3A18"
    "&sign_string=adc37fedfc2b71c168f8c7a377e5addc"
)
CLICK_A = ClickSettings(service_id="28420", merchant_id="20000", secret_key="s3cr3tK3y")


def request_a(body: str = EXAMPLE_A, *, complete: bool = False) -> ClickRequest:
    return parse_request(parse_form(body.encode()), complete=complete)


def complete_a(amount: str = "15000.00", sign: str = "7d2afaa91c98945d323a5b5afb677341") -> str:
    return (
        EXAMPLE_A.replace("action=0", "action=1").replace("amount=15000.00", f"amount={amount}")
        + f"&merchant_prepare_id=17&sign_string={sign}"
    ).replace("&sign_string=adc37fedfc2b71c168f8c7a377e5addc", "", 1)


def test_example_a_prepare() -> None:
    request = request_a()
    assert signature(request, "s3cr3tK3y", complete=False) == "adc37fedfc2b71c168f8c7a377e5addc"
    assert signature_matches(request, CLICK_A, complete=False)
    assert request.sign_time == "2024-10-27 18:02:18"
    assert answer(0, request, PREPARE, 17) == {
        "click_trans_id": 2854711398,
        "merchant_trans_id": "123456_PLUS_1730034567",
        "merchant_prepare_id": 17,
        "error": 0,
        "error_note": "Success",
    }
    integer = request_a(EXAMPLE_A.replace("amount=15000.00", "amount=15000"))
    assert signature(integer, "s3cr3tK3y", complete=False) == "d8e38c0873d6fc92ab25b3d74a61e421"


def test_example_a_complete() -> None:
    request = request_a(complete_a(), complete=True)
    assert signature(request, "s3cr3tK3y", complete=True) == "7d2afaa91c98945d323a5b5afb677341"
    assert signature_matches(request, CLICK_A, complete=True)
    integer = request_a(complete_a("15000"), complete=True)
    assert signature(integer, "s3cr3tK3y", complete=True) == "a47217f41e356cc55da8a1ad70a3e2f8"
    without_prepare_id = request_a(
        complete_a(sign="ac6f5cfd70947bb88bc0c91632aa5d98"), complete=True
    )
    assert not signature_matches(without_prepare_id, CLICK_A, complete=True)
    assert answer(0, request, COMPLETE, 17)["merchant_confirm_id"] == 17


def test_example_a_rejections() -> None:
    sha1 = "e7602cd5a38e973700ea0867a979f474d3c74ae9"
    hashed = "285471139828420s3cr3tK3y123456_PLUS_173003456715000.0002024-10-27 18:02:18"
    assert hashlib.sha1(hashed.encode()).hexdigest() == sha1
    assert not signature_matches(
        request_a(EXAMPLE_A.replace("adc37fedfc2b71c168f8c7a377e5addc", sha1)),
        CLICK_A,
        complete=False,
    )
    upper = request_a(
        EXAMPLE_A.replace("adc37fedfc2b71c168f8c7a377e5addc", "ADC37FEDFC2B71C168F8C7A377E5ADDC")
    )
    assert signature_matches(upper, CLICK_A, complete=False)
    foreign = ClickSettings(service_id="28421", merchant_id="20000", secret_key="s3cr3tK3y")
    assert not signature_matches(request_a(), foreign, complete=False)
    assert not signature_matches(request_a(), None, complete=False)


def test_example_b_64_bit() -> None:
    body = (
        "click_trans_id=7350928401736625193&service_id=30121&click_paydoc_id=1"
        "&merchant_trans_id=987654321_PRO_1763906700&amount=49000.00&action={action}&error=0"
        "&sign_time=2025-11-23+19%3A07%3A42&sign_string=x{extra}"
    )
    prepare = request_a(body.format(action=0, extra=""))
    assert signature(prepare, "rT7kQ2vLmZ", complete=False) == "57d6c5d30b3d159f3c692c66bf15928f"
    complete = request_a(body.format(action=1, extra="&merchant_prepare_id=1042"), complete=True)
    assert signature(complete, "rT7kQ2vLmZ", complete=True) == "531597a4011f7eae90924a46c80a72c6"
    assert complete.click_trans_id == 7350928401736625193
    assert answer(0, complete, COMPLETE, 1042) == {
        "click_trans_id": 7350928401736625193,
        "merchant_trans_id": "987654321_PRO_1763906700",
        "merchant_confirm_id": 1042,
        "error": 0,
        "error_note": "Success",
    }


def test_error_answers_echo_ids_except_minus_8() -> None:
    request = request_a()
    assert answer(-5, request) == {
        "click_trans_id": 2854711398,
        "merchant_trans_id": "123456_PLUS_1730034567",
        "error": -5,
        "error_note": "User does not exist",
    }
    assert answer(-8, request) == {"error": -8, "error_note": "Error in request from click"}
    assert answer(-7) == {"error": -7, "error_note": "Failed to update user"}


@pytest.mark.parametrize(
    "body",
    [b"", b"{}", b"a=1&a=2", b"a=1&b", b"a=1&", b"a=%ff", b"\xff=1", b"a=1&&b=2"],
)
def test_parse_form_refuses(body: bytes) -> None:
    with pytest.raises(Malformed):
        parse_form(body)


def test_parse_form_decodes_plus_and_percent() -> None:
    assert parse_form(b"a=b+c%2B%D0%B9&d=&=e") == {"a": "b c+й", "d": "", "": "e"}


@pytest.mark.parametrize(
    ("amount", "expected"),
    [("15000", 1_500_000), ("015000.000", 1_500_000), ("0.5", 50), ("15000.01", 1_500_001)],
)
def test_tiyin(amount: str, expected: int) -> None:
    assert tiyin(amount) == expected


def test_tiyin_refuses_fractions_of_a_tiyin() -> None:
    assert tiyin("15000.001") is None
    assert tiyin("15000.00000000000000000000000001") is None

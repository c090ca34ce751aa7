"""Cards, IBANs, routing numbers, e-mails, phones and network identifiers: true values, near
misses, and each miss and false positive the labelled corpus showed."""

from __future__ import annotations

import pytest

from extproc.masking.detectors import builtin_detectors, payment
from extproc.masking.profile import Profile
from tests.support.detector_cases import card, found, routing, types

# -- cards -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        card("4", 16),
        card("4", 13),
        card("51", 16),
        card("2221", 16),
        card("37", 15),
        card("6011", 16),
        card("3528", 16),
        card("36", 14),
        card("62", 19),
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "3782 822463 10005",
    ],
)
def test_cards_are_found(value: str) -> None:
    assert found(f"pay with {value} today") == [("CARD", value)]


def test_a_card_right_after_another_number_is_found() -> None:
    assert found("qty 2 4111 1111 1111 1111") == [("CARD", "4111 1111 1111 1111")]
    assert found("on 2024-01-15 4111 1111 1111 1111") == [("CARD", "4111 1111 1111 1111")]
    assert found("ref 12 4111111111111111") == [("CARD", "4111111111111111")]


@pytest.mark.parametrize(
    "text",
    [
        "TRK4111111111111111",  # a tracking number glued to letters
        "TRK123456789012345678",
        "1Z4111111111111111",
        "uuid 123e4567-e89b-12d3-a456-426614174007",  # its last group once passed Luhn
        "order 4111 1111 1111 1112",  # Luhn fails
        "order 1234567812345678",  # no issuer starts with 12
        "4111 1111 1111 1",  # grouped unlike a card
        "id 4111111111111111111111",  # too long
        "card 3782822463100050",  # Amex prefix, Visa length
        "ts 1700000000123",
    ],
)
def test_card_near_misses(text: str) -> None:
    assert "CARD" not in types(text)


def test_digit_groups_of_an_iban_with_a_bad_checksum_are_not_a_card() -> None:
    # The groups after the country code pass Luhn and an Amex range as a 15-digit run...
    value = card("37", 15)
    bad_iban = f"DE00 {value[:4]} {value[4:8]} {value[8:12]} {value[12:]}"
    assert found(bad_iban) == []
    # ...and on their own they are a card.
    assert types(f"{value[:4]} {value[4:8]} {value[8:12]} {value[12:]}") == {"CARD"}


# -- IBAN, routing numbers ----------------------------------------------------------------------


def test_ibans_and_their_near_misses() -> None:
    assert found("IBAN DE89 3704 0044 0532 0130 00") == [("IBAN", "DE89 3704 0044 0532 0130 00")]
    assert found("iban GB82WEST12345698765432") == [("IBAN", "GB82WEST12345698765432")]
    assert found("IBAN DE00 3704 0044 0532 0130 00") == []
    assert found("XDE89370400440532013000") == []


def test_routing_numbers_need_a_keyword_and_their_checksum() -> None:
    number = routing("02100002")
    assert found(f"routing number: {number}") == [("US_ROUTING", number)]
    assert found(f"ABA {number}") == [("US_ROUTING", number)]
    assert found(f"invoice {number}") == []
    bad = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert found(f"routing number {bad}") == []


# -- e-mail ------------------------------------------------------------------------------------


def test_emails() -> None:
    assert found("write to jane.doe+tag@mail.example.co.uk") == [
        ("EMAIL", "jane.doe+tag@mail.example.co.uk")
    ]
    assert found("an@ sign, user@localhost, @handle") == []


# -- phones ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "04 61 47 72 79",  # FR
        "04.61.47.72.79",
        "020 7946 0263",  # GB
        "030 92400589",  # DE
        "404 555 0150",  # US
        "(415) 555-0100",
        "415-555-0100",
        "+1 415 555 0100",
        "+44 20 7946 0958",
        "+33 (0)4 61 47 72 79",  # six groups: masked whole, not up to the fifth
        "0049 30 92400589",
    ],
)
def test_phones_are_found(value: str) -> None:
    assert found(f"call {value} please") == [("PHONE", value)]


def test_unformatted_national_numbers_need_a_phone_keyword() -> None:
    assert found("phone: 4045550150") == [("PHONE", "4045550150")]
    assert found("ruf mich an, Telefon 03092400589") == [("PHONE", "03092400589")]
    assert found("order 4045550150") == []
    assert found("ref 0612345678") == []


@pytest.mark.parametrize(
    "text",
    [
        "released 2024-01-15 at 12:30:45",
        "on 15.01.2024 14:30 and 01/02/2024",
        "version 1.2.3.4.5 and v10.0.0",
        "build 20240115.12",
        "price $1,234.56, 1 234 567 EUR, 12.345.678",
        "ts 1700000000123 and 1700000000",
        "id 123e4567-e89b-12d3-a456-426614174000",
        "order ORD-2024-000123 and #48213",
        "from 10.0.0.1 and 192.168.100.200",
        "call 555 1234",  # too short
        "room 030 1234",  # valid in Germany, too short to tell
    ],
)
def test_phone_near_misses(text: str) -> None:
    assert "PHONE" not in types(text)


def test_phone_regions_choose_the_national_formats() -> None:
    spanish = Profile("es", detectors=builtin_detectors(("phone",), phone_regions=("ES",)))
    default = Profile("d", detectors=builtin_detectors(("phone",)))
    assert found("llama al 612 34 56 78", spanish) == [("PHONE", "612 34 56 78")]
    assert found("llama al 612 34 56 78", default) == []
    assert found("call 020 7946 0263", spanish) == []  # GB is not a region of this profile
    assert found("call +44 20 7946 0958", spanish) == [("PHONE", "+44 20 7946 0958")]
    with pytest.raises(ValueError, match="unknown phone region 'XX'"):
        builtin_detectors(("phone",), phone_regions=("XX",))


# -- network -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("from 203.0.113.7", "IPV4"),
        ("from 2001:db8::8a2e:370:7334", "IPV6"),
        ("nic 00:1a:2b:3c:4d:5e", "MAC_ADDRESS"),
        ("nic 00-1A-2B-3C-4D-5E", "MAC_ADDRESS"),
        ("nic 001a.2b3c.4d5e", "MAC_ADDRESS"),
    ],
)
def test_network_identifiers(text: str, label: str) -> None:
    assert types(text) == {label}


@pytest.mark.parametrize(
    "text",
    [
        "999.1.1.1 is not an address",
        "at 12:30:45:10",
        "mixed 00:1a-2b:3c:4d:5e",
        "none 00:00:00:00:00:00 or ff:ff:ff:ff:ff:ff",
        "long 00:1a:2b:3c:4d:5e:6f",
        "hash 001a2b3c4d5e",
    ],
)
def test_network_near_misses(text: str) -> None:
    assert found(text) == []


def test_the_issuer_table_says_what_the_issuer_ranges_say() -> None:
    # Every four-digit prefix and card length, against the ranges the table is made from.
    for number in range(10_000):
        prefix = f"{number:04d}"
        for length in range(13, 20):
            in_a_range = any(
                low <= prefix[: len(low)] <= high and length in lengths
                for low, high, lengths in payment._ISSUERS
            )
            assert (length in payment._LENGTHS_BY_PREFIX.get(prefix, frozenset())) == in_a_range

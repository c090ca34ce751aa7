"""The refusals in front of ``phonenumbers``: each never refuses a number ``parse`` and
``is_valid_number`` accept, over generated digit strings of many regions, and the phone
validator answers exactly as it did when it asked ``phonenumbers`` about every candidate."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from extproc.masking.detectors import contact, phone_rules

REGIONS = (
    "US", "GB", "FR", "DE", "ES", "IT", "NL", "BE", "CH", "AT", "IE", "PT", "PL", "SE", "RU",
    "BR", "AR", "MX", "CA", "IN", "JP", "CN", "AU", "NZ", "ZA", "NG", "SG", "IM", "JE", "GG",
)  # fmt: skip
TYPES = (
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
)


def parses_valid(number: str, region: str) -> bool:
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(parsed))


def mutated(digits: str, rng: random.Random) -> str:
    return "".join(str(rng.randrange(10)) if rng.random() < 0.25 else d for d in digits)


def digit_strings(count: int, seed: int) -> list[str]:
    """Real numbers of every region (national, with the trunk prefix, after 00 and the calling
    code), the same with some digits changed, and random digits (many with a leading 0)."""
    rng = random.Random(seed)
    real: list[str] = []
    for region in REGIONS:
        for kind in TYPES:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            nsn = phonenumbers.national_significant_number(example)
            real += [nsn, "0" + nsn, "1" + nsn, f"00{example.country_code}{nsn}"]
    strings = real + [mutated(number, rng) for number in real for _ in range(4)]
    while len(strings) < count:
        digits = "".join(str(rng.randrange(10)) for _ in range(rng.randrange(6, 17)))
        strings.append(rng.choice(("", "0", "00", "1", "")) + digits)
    return strings


def test_a_national_refusal_never_refuses_a_valid_number() -> None:
    refused = 0
    for digits in digit_strings(1500, seed=1):
        for region in REGIONS:
            if not phone_rules.may_be_valid(digits, region):
                refused += 1
                assert not parses_valid(digits, region), (digits, region)
    assert refused > 10_000  # the refusal is not vacuous


def test_an_international_refusal_never_refuses_a_valid_number() -> None:
    refused = 0
    for digits in digit_strings(1500, seed=2):
        digits = digits.removeprefix("00")
        code = phone_rules.calling_code(digits)
        if code is None:
            continue
        # Behind a calling code, the region parse is given changes nothing.
        verdicts = {parses_valid("+" + digits, region) for region in REGIONS[:8]}
        assert len(verdicts) == 1, digits
        if not phone_rules.may_be_valid_international(digits, code):
            refused += 1
            assert verdicts == {False}, digits
    assert refused > 500


def test_the_calling_code_is_the_one_parse_reads() -> None:
    for digits in digit_strings(600, seed=3):
        code = phone_rules.calling_code(digits)
        try:
            parsed = phonenumbers.parse("+" + digits, None)
        except phonenumbers.NumberParseException:
            continue
        assert code == parsed.country_code, digits


def reference_valid_in(digits: str, regions: tuple[str, ...], grouped: tuple[int, ...]) -> bool:
    """The national validator as it was: ``phonenumbers`` asked about every candidate."""
    if digits.startswith("00"):
        international = "+" + digits[2:]
        return any(parses_valid(international, region) for region in regions)
    for region in regions:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if metadata is None:
            continue
        if metadata.country_code == 1:
            if digits.startswith("1"):
                digits, grouped = digits[1:], grouped[1:] if grouped[:1] == (1,) else grouped
            if len(digits) != 10 or grouped not in ((3, 3, 4), (10,)):
                continue
        elif metadata.national_prefix == "0" and not digits.startswith("0"):
            continue
        if parses_valid(digits, region):
            return True
    return False


@pytest.mark.parametrize(
    "regions",
    [("US", "GB", "FR", "DE"), ("ES", "IT", "BR", "IN"), ("JP", "AU", "CA"), ("GB",), ()],
)
def test_the_validator_answers_as_phonenumbers_alone_did(regions: tuple[str, ...]) -> None:
    rng = random.Random(4)
    valid = 0
    for digits in digit_strings(1200, seed=5):
        grouped = rng.choice(((len(digits),), (3, 3, 4), (2,) * (len(digits) // 2)))
        expected = reference_valid_in(digits, regions, grouped)
        assert contact._valid_in.__wrapped__(digits, regions, grouped) == expected, digits
        valid += expected
    assert valid > 50 or not regions  # real numbers among them

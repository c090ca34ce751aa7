"""Secrets. Every token here is made up; the vendor prefixes are split in the source so that
secret scanners do not flag this file."""

from __future__ import annotations

import pytest

from tests.support.detector_cases import found

ALNUM = "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0u1V2w3X4y5Z6" * 4


def token(prefix: str, length: int, alphabet: str = ALNUM) -> str:
    return prefix + alphabet[:length]


SECRETS = [
    token("xo" + "xb-", 50, "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"),
    token("xo" + "xp-", 40, "1234567890-1234567890-1234567890-abcdef"),
    "https://hooks.slack.com/services/" + "T00000000/B00000000/" + "X" * 24,
    token("sk_" + "live_", 24),
    token("rk_" + "live_", 24),
    token("pk_" + "test_", 24),
    token("AI" + "za", 35),
    token("gl" + "pat-", 20),
    token("np" + "m_", 36),
    token("py" + "pi-AgEIcHlwaS5vcmc", 60),
    token("S" + "K", 32, "0123456789abcdef" * 2),
    "S" + "G." + ALNUM[:22] + "." + ALNUM[:43],
    token("h" + "f_", 34),
    token("gh" + "p_", 36),
    token("github" + "_pat_", 82, ALNUM + "_"),
    token("sk-" + "proj-", 40),
    token("sk-" + "ant-", 40),
    "AK" + "IAIOSFODNN7EXAMPLE",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.abcdefghijklmnopqrstu",
]


@pytest.mark.parametrize("value", SECRETS)
def test_prefixed_secrets_are_found_whole(value: str) -> None:
    assert found(f"use {value} now") == [("SECRET", value)]


AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AZURE_KEY = ALNUM[:86] + "=="


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET),
        (f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}", AWS_SECRET),
        (f'{{"SecretAccessKey": "{AWS_SECRET}"}}', AWS_SECRET),
        (f"my aws secret key is {AWS_SECRET}", AWS_SECRET),
        (
            f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={AZURE_KEY};",
            AZURE_KEY,
        ),
        ("Endpoint=sb://x/;SharedAccessKey=" + ALNUM[:43] + "=", ALNUM[:43] + "="),
        ("SharedAccessSignature=sv=2022-11-02&ss=b&sig=" + ALNUM[:40], None),
        ('"private_key_id": "' + "0123456789abcdef" * 2 + "01234567" + '"', None),
        ("password = 'Tr0ub4dor&3'", "Tr0ub4dor&3"),
        ('{"client_secret": "s3cr3t-V4lue-9"}', "s3cr3t-V4lue-9"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", None),
        ('"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEF', None),
        ("Authorization: Bearer abcdefghijklmnop1234", None),
    ],
)
def test_secrets_in_context_are_found(text: str, value: str | None) -> None:
    findings = found(text)
    assert [label for label, _ in findings] == ["SECRET"]
    if value is not None:
        assert findings[0][1] == value


@pytest.mark.parametrize(
    "text",
    [
        "the key sk_live is documented",  # a prefix alone
        "AIza" + ALNUM[:30],  # too short for a Google key
        token("x" + "AI" + "za", 35),  # embedded in a longer token
        f"value {AWS_SECRET}",  # forty characters without their key name
        "aws_secret_access_key = " + AWS_SECRET + "MORE",  # longer than a secret key
        "api_key = os.environ['OPENAI_API_KEY']",  # code, not a value
        "password: ********",
        "password = <your password>",
        "secret: YOUR_SECRET_HERE",
        "password=hunter2",  # too short to tell
        "token limit is 4096 and max_tokens=256",
        "password_hash = bcrypt.hashpw(pw, salt)",
        "api_key: settings.api_key",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEF\n-----END PUBLIC KEY-----",
    ],
)
def test_secret_near_misses(text: str) -> None:
    assert found(text) == []

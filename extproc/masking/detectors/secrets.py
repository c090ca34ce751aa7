"""Secrets: credentials that grant access, whatever they belong to. All are type ``SECRET``.

Most are recognised by a vendor's literal prefix (the gitleaks class): AWS access key ids,
GitHub, GitLab, Slack (tokens and webhooks), Stripe, Google API keys, npm, PyPI, Twilio,
SendGrid, Hugging Face, OpenAI and Anthropic keys, JWTs, bearer tokens, private-key blocks.
Those without one are taken from their context: the AWS secret access key (40 characters after
``aws_secret_access_key``, ``SecretAccessKey``...), Azure storage and service-bus keys and SAS
signatures, the ``private_key_id`` of a GCP service-account file, and a ``password=`` /
``secret:`` / ``api_key=`` assignment whose value looks like a real one (letters with digits or
symbols, no placeholder, no code expression).

Each trigger spans the whole token, so its window always holds the token entire.
"""

from __future__ import annotations

import re

from extproc.masking.detectors.base import FLAGS, Detector, Trigger

_B = r"(?<![\w-])"  # a token starts at a boundary...
_E = r"(?![\w-])"  # ...and ends at one
_TOKENS = re.compile(
    "|".join(
        (
            rf"{_B}(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{{16}}{_E}",  # AWS access key id
            rf"{_B}gh[pousr]_[A-Za-z0-9]{{36,255}}",  # GitHub
            rf"{_B}github_pat_[A-Za-z0-9_]{{50,255}}",
            rf"{_B}gl(?:pat|dt|ptt|rt|soat|ft|cbt|oas)-[0-9A-Za-z_-]{{20,255}}",  # GitLab
            rf"{_B}xox[abposre]-[0-9A-Za-z-]{{10,255}}",  # Slack
            rf"{_B}xoxe\.xox[bp]-[0-9A-Za-z-]{{10,255}}",
            rf"{_B}xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]{{10,255}}",
            r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,255}",
            rf"{_B}(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{{10,255}}",  # Stripe
            rf"{_B}whsec_[0-9A-Za-z]{{24,255}}",
            rf"{_B}AIza[0-9A-Za-z_-]{{35}}{_E}",  # Google API key
            rf"{_B}npm_[A-Za-z0-9]{{36}}{_E}",  # npm
            rf"{_B}pypi-AgE[A-Za-z0-9_-]{{50,255}}",  # PyPI
            rf"{_B}SK[0-9a-fA-F]{{32}}{_E}",  # Twilio API key
            rf"{_B}SG\.[A-Za-z0-9_-]{{22}}\.[A-Za-z0-9_-]{{43}}{_E}",  # SendGrid
            rf"{_B}(?:hf_|api_org_)[A-Za-z0-9]{{30,40}}{_E}",  # Hugging Face
            rf"{_B}sk-(?:proj-|ant-|live-|test-|svcacct-|admin-)?[A-Za-z0-9_-]{{20,255}}",
        )
    ),
    FLAGS,
)
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:[\s\S]{1,16384}?"
    r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|[A-Za-z0-9+/=\s\\]{16,16384})",
    FLAGS,
)
_JWT = re.compile(
    rf"{_B}eyJ[A-Za-z0-9_-]{{8,}}\.eyJ[A-Za-z0-9_-]{{8,}}\.[A-Za-z0-9_-]{{16,}}", FLAGS
)
_BEARER = re.compile(r"(?<!\w)[Bb](?:earer|EARER)\s+[A-Za-z0-9._~+/-]{16,}=*", FLAGS)

_QUOTE = r"\\?[\"']?"  # a value may be quoted, and the quotes escaped (JSON inside JSON)
_ASSIGN = rf"{_QUOTE}\s{{0,3}}(?:[:=]|=>|\bis\b)\s{{0,3}}{_QUOTE}"
_CONTEXT = re.compile(
    "|".join(
        (
            r"(?i:aws[_ -]?secret(?:[_ -]?access)?(?:[_ -]?key)?|secret[_ -]?access[_ -]?key)"
            rf"{_ASSIGN}([A-Za-z0-9/+]{{40}})(?![A-Za-z0-9/+=])",
            r"(?:AccountKey|SharedAccessKey)=([A-Za-z0-9+/]{20,}={0,2})",
            r"SharedAccessSignature=([^;\"'\s]{20,})",
            r"[?&]sig=([A-Za-z0-9%+/]{20,}(?:%3[Dd]|=){0,2})",
            rf"private_key_id{_ASSIGN}([0-9a-f]{{40}})(?![0-9a-f])",
        )
    ),
    FLAGS,
)
_ASSIGNMENT = re.compile(
    r"(?i:\b(?:password|passwd|passphrase|secret|client_secret|secret_key|api_?key"
    rf"|access_?token|auth_?token))\b{_ASSIGN}([^\s\"'\\,;]{{8,64}})(?![^\s\"'\\,;])",
    FLAGS,
)
_PLACEHOLDER = re.compile(
    r"(?i)[A-Z_]+|(.)\1+|.*(?:x{4}|\*{3}|<|>|\$\{|\{\{|%s|example|changeme|placeholder|redacted"
    r"|your[_-]|\.\.\.).*|[A-Za-z_]+(?:\.[A-Za-z_]+)+|.*[(\[].*",
    FLAGS,
)


def _valid_assignment(match: re.Match[str]) -> bool:
    """A real value mixes letters with digits or symbols, and is no placeholder, no
    environment variable name, no attribute or call from a code sample."""
    secret = match.group(1)
    has_letter = any(ch.isalpha() for ch in secret)
    has_other = any(not ch.isalpha() for ch in secret)
    return has_letter and has_other and _PLACEHOLDER.fullmatch(secret) is None


DETECTORS: dict[str, Detector] = {
    "secret_token": Detector("secret", "SECRET", _TOKENS, scope="secret"),
    "private_key": Detector("secret", "SECRET", _PRIVATE_KEY, scope="private_key"),
    "jwt": Detector("secret", "SECRET", _JWT, scope="secret"),
    "bearer": Detector("secret", "SECRET", _BEARER, scope="secret"),
    "secret_in_context": Detector("secret", "SECRET", _CONTEXT, group=-1, scope="secret_context"),
    "secret_assignment": Detector(
        "secret", "SECRET", _ASSIGNMENT, _valid_assignment, group=1, scope="secret_assignment"
    ),
}
_BODY = r"[A-Za-z0-9_.~+/=-]*"  # so that a trigger spans the whole token
TRIGGERS = (
    Trigger(
        "secret",
        r"(?:A[KSB]IA|ACCA|gh[pousr]_|github_pat_|gl[a-z]{1,4}-|xox[a-z.]|xapp-|hooks\.slack\.com/"
        r"|[spr]k_live_|[spr]k_test_|whsec_|AIza|npm_|pypi-|SK[0-9a-fA-F]{8}|SG\.|hf_|api_org_"
        rf"|sk-|eyJ|(?i:bearer)\s+){_BODY}",
        before=2,
        after=2,
    ),
    Trigger("private_key", r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----", before=0, after=16_500),
    Trigger(
        "secret_context",
        rf"(?i:aws[_ -]?secret|secret[_ -]?access[_ -]?key|private_key_id)[^\n]{{0,16}}{_BODY}"
        rf"|AccountKey={_BODY}|SharedAccessKey={_BODY}|SharedAccessSignature=[^;\"'\s]*"
        rf"|[?&]sig=[A-Za-z0-9%+/=]*",
        before=2,
        after=2,
    ),
    Trigger(
        "secret_assignment",
        r"(?i)(?:passw|passphrase|secret|api_?key|access_?token|auth_?token)[^\n]{0,12}[:=]",
        before=40,
        after=72,
    ),
)

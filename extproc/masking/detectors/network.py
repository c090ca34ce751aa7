"""Network identifiers: IPv4 and IPv6 addresses (validated by ``ipaddress``) and MAC addresses
(colon, dash or Cisco dot notation, one separator throughout)."""

from __future__ import annotations

import ipaddress
import re

from stdnum import mac

from extproc.masking.detectors.base import FLAGS, Detector, Trigger

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]|\.\d)", FLAGS)
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:){1,7}(?::|(?::[0-9A-Fa-f]{1,4}){1,7}|[0-9A-Fa-f]{1,4})"
    r"(?![\w:])",
    FLAGS,
)
_HEX2 = "[0-9A-Fa-f]{2}"
_MAC = re.compile(
    rf"(?<![\w:\-.])(?:{_HEX2}([:\-]){_HEX2}(?:\1{_HEX2}){{4}}"
    r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4})(?![\w:\-]|\.\w)",
    FLAGS,
)


def _valid_ipv4(match: re.Match[str]) -> bool:
    text = match.group(0)
    if text.endswith(".0.0.0"):
        return False  # a network, not a host; and every version "Chrome/120.0.0.0" writes
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _valid_ipv6(match: re.Match[str]) -> bool:
    text = match.group(0)
    if text.count(":") < 2:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _valid_mac(match: re.Match[str]) -> bool:
    text = match.group(0)
    if "." in text:  # Cisco notation: stdnum knows colons and dashes
        text = ":".join(text.replace(".", "")[i : i + 2] for i in range(0, 12, 2))
    digits = text.replace(":", "").replace("-", "").lower()
    # All zeros or all ones is a placeholder or the broadcast address, not a device.
    return bool(mac.is_valid(text)) and digits not in ("000000000000", "ffffffffffff")


DETECTORS: dict[str, Detector] = {
    "ipv4": Detector("ipv4", "IPV4", _IPV4, _valid_ipv4, scope="ipv4"),
    "ipv6": Detector("ipv6", "IPV6", _IPV6, _valid_ipv6, scope="ipv6"),
    "mac_address": Detector("mac_address", "MAC_ADDRESS", _MAC, _valid_mac, scope="mac_address"),
}
TRIGGERS = (
    Trigger("ipv4", r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b", before=2, after=3),
    # Compressed addresses have "::"; full ones seven colons, so a time (12:30:45) is no trigger.
    Trigger("ipv6", r"::|(?:[0-9A-Fa-f]{1,4}:){3}", before=40, after=40),
    Trigger(
        "mac_address",
        r"(?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}|(?:[0-9A-Fa-f]{2}-){5}[0-9A-Fa-f]{2}"
        r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}",
        before=2,
        after=2,
    ),
)

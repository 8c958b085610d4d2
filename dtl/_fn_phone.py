"""Phone numbers: ``phonenumber-parse`` and ``phonenumber-format`` (dtl-spec 6.18), using ``phonenumbers``.

Phone numbers are URIs in the RFC 3966 form (``~rtel:+47-22-22-22-22``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat

from ._registry import IGNORE, elementwise
from ._values import URI

__all__ = ["FORMATS", "parse_phone_number"]


def parse_phone_number(text: str, region: str | None) -> PhoneNumber | None:
    """A valid phone number parsed from ``text`` (REGION supplies a missing country code), else None."""
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


@elementwise("phonenumber-parse", params=(0, 1))
def _phonenumber_parse(region: Any = None) -> Callable[[Any], Any] | None:
    """``["phonenumber-parse", REGION?, VALUES]``: strings, integers and tel URIs to RFC 3966 tel URIs."""
    if region is not None and type(region) is not str:
        return None
    region_code = region.upper() if region else None

    def parse(value: Any) -> Any:
        kind = type(value)
        if kind is str or kind is URI:
            text = value if kind is str else value.value
        elif kind is int:
            text = str(value)
        else:
            return IGNORE
        number = parse_phone_number(text, region_code)
        if number is None:
            return IGNORE
        return URI(phonenumbers.format_number(number, PhoneNumberFormat.RFC3966))

    return parse


FORMATS: dict[str, Callable[[PhoneNumber], str | None]] = {
    "e164": lambda n: phonenumbers.format_number(n, PhoneNumberFormat.E164).lstrip("+"),
    "national-e164": phonenumbers.national_significant_number,
    "national": lambda n: phonenumbers.format_number(n, PhoneNumberFormat.NATIONAL),
    "international": lambda n: phonenumbers.format_number(n, PhoneNumberFormat.INTERNATIONAL),
    "rfc3966": lambda n: phonenumbers.format_number(n, PhoneNumberFormat.RFC3966),
    "isocode": phonenumbers.region_code_for_number,
    "country-code": lambda n: str(n.country_code),
}
"""The FORMAT names of ``phonenumber-format`` (``e164`` is written without ``+``, as the docs show)."""


@elementwise("phonenumber-format", params=1)
def _phonenumber_format(fmt: Any) -> Callable[[Any], Any] | None:
    """``["phonenumber-format", FORMAT, VALUES]``: tel URIs to strings; an unknown FORMAT gives null."""
    render = FORMATS.get(fmt) if type(fmt) is str else None
    if render is None:
        return None

    def format_one(value: Any) -> Any:
        if type(value) is not URI or not value.value.startswith("tel:"):
            return IGNORE
        try:
            number = phonenumbers.parse(value.value, None)
        except NumberParseException:
            return IGNORE
        text = render(number)
        return IGNORE if text is None else text

    return format_one

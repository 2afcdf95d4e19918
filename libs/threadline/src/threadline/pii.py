"""Personal data in text: the one set of patterns the agent (on events) and the gateway (on every
response) mask, so what counts as PII does not depend on the path a run's content takes out."""

from __future__ import annotations

import re

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_SSN = re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)")
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{3}\)|\d{3})[ .-]?\d{3}[ .-]?\d{4}(?!\d)")
# Longer than any pattern above that may contain whitespace: what a stream must hold back.
LONGEST_SPACED_MATCH = 48
_MAYBE = re.compile(r"[@\d]")


def _luhn(digits: str) -> bool:
    total = 0
    for n, char in enumerate(reversed(digits)):
        d = int(char) * (2 if n % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def redact_pii(text: str) -> str:
    """Emails, US social security numbers, payment card numbers (Luhn-checked) and phone numbers, masked."""
    if not _MAYBE.search(text):  # every pattern needs an "@" or a digit: most text is left at once
        return text
    text = _EMAIL.sub("[email]", text)
    text = _SSN.sub("[ssn]", text)
    text = _CARD.sub(lambda m: "[card]" if _luhn(re.sub(r"\D", "", m.group())) else m.group(), text)
    return _PHONE.sub("[phone]", text)

"""The languages a collection's keyword index can stem in: one list for the gateway and the retrieval service.

The gateway refuses an unknown language before anything is queued, without importing the retrieval
service or PyStemmer; the retrieval service checks against the same list (a test holds it equal to
PyStemmer's Snowball algorithms, so an upgrade that changes them is noticed).
"""

from __future__ import annotations

DEFAULT_LANGUAGE = "english"
LANGUAGES = frozenset(
    "arabic armenian basque catalan czech danish dutch dutch_porter english esperanto estonian finnish french "
    "german greek hindi hungarian indonesian irish italian lithuanian nepali norwegian persian polish porter "
    "portuguese romanian russian serbian sesotho spanish swedish tamil turkish yiddish".split()
)


def normalise_language(language: str) -> str:
    """``language`` as a stemmer name (empty: English); ValueError, naming the choices, for an unknown one."""
    name = language.strip().lower() or DEFAULT_LANGUAGE
    if name not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; one of: {', '.join(sorted(LANGUAGES))}")
    return name

"""Country names and codes as CRM exports write them -> ISO 3166-1 alpha-2.

The names come from ``pycountry`` (the ISO 3166 data Debian's iso-codes maintains): alpha-2,
alpha-3 and numeric codes, official and common names, and their translations into the languages
our regions write (German, French, Spanish, Italian, Dutch, Portuguese, Chinese, Japanese,
Korean). :data:`ALIASES` adds only what ISO does not spell: short and old names exports still
use (EIRE, UK, Holland, Russia, Turkey…). Matching ignores case, accents, punctuation and spacing.
"""

from __future__ import annotations

import gettext
import re
import unicodedata
from functools import lru_cache

LANGUAGES = ("de", "fr", "es", "it", "nl", "pt", "zh_CN", "zh_TW", "ja", "ko")
ALIASES = {
    "EIRE": "IE", "UK": "GB", "U K": "GB", "GREAT BRITAIN": "GB", "BRITAIN": "GB", "ENGLAND": "GB", "SCOTLAND": "GB",
    "WALES": "GB", "NORTHERN IRELAND": "GB", "HOLLAND": "NL", "USA": "US", "U S A": "US", "U S": "US", "AMERICA": "US",
    "RUSSIA": "RU", "BRUNEI": "BN", "MACEDONIA": "MK", "TURKEY": "TR", "IVORY COAST": "CI", "SWAZILAND": "SZ",
    "CAPE VERDE": "CV", "PALESTINE": "PS", "VATICAN": "VA", "BURMA": "MM", "KOSOVO": "XK", "RSA": "ZA", "UAE": "AE",
    "PRC": "CN", "MAINLAND CHINA": "CN", "SOUTH KOREA": "KR", "KOREA": "KR", "CZECH REPUBLIC": "CZ",
}


def _key(text: str) -> str:
    """Upper case, accents dropped, punctuation as spaces, single spaces: 'Côte d’Ivoire' -> 'COTE D IVOIRE'."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"\s+", " ", re.sub(r"[^\w]+", " ", plain)).strip().upper()


@lru_cache(maxsize=1)
def lookup() -> dict[str, str]:
    """Every spelling's key -> alpha-2."""
    import pycountry

    names: dict[str, str] = {}
    translations = []
    for language in LANGUAGES:
        try:
            translations.append(gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[language]))
        except OSError:
            continue  # a pycountry build without this language's catalog
    for country in pycountry.countries:
        spellings = [country.alpha_2, country.alpha_3, getattr(country, "numeric", None), country.name,
                     getattr(country, "official_name", None), getattr(country, "common_name", None)]
        english = [s for s in spellings[3:] if s]
        spellings += [t.gettext(name) for t in translations for name in english]
        for spelling in spellings:
            if spelling:
                names.setdefault(_key(spelling), country.alpha_2)
    for alias, code in ALIASES.items():
        names[_key(alias)] = code
    return names


def country_code(text: str | None) -> str | None:
    """ISO 3166-1 alpha-2 of a code or name, or None when it names no country."""
    if text is None or not str(text).strip():
        return None
    key = _key(str(text))
    # "the Netherlands", "The Gambia": the article is optional in speech and in exports.
    return lookup().get(key) or (lookup().get(key[4:]) if key.startswith("THE ") else None)

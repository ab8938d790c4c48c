"""Column -> Column standardization helpers shared by every silver table.

Each helper is pure: a Column (and plain values) in, a Column out, no reads or config. Parsing
follows the source's declared conventions (date pattern, time zone, decimal separator, default
phone country), which the caller passes in as values.
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import StringType

# Deliberately simple: one "@", no spaces, a dot in the domain. Full RFC 5322 accepts addresses
# no CRM user types, and rejects none that the defects here produce.
EMAIL_PATTERN = r"^[a-z0-9._%+\-']+@[a-z0-9\-]+(\.[a-z0-9\-]+)*\.[a-z]{2,}$"
# Common ways exports spell a country, beyond ISO alpha-2.
COUNTRY_ALIASES = {
    "CHN": "CN", "CHINA": "CN", "中国": "CN", "PRC": "CN",
    "USA": "US", "UNITED STATES": "US", "U.S.": "US", "U.S.A.": "US",
    "GBR": "GB", "UK": "GB", "UNITED KINGDOM": "GB", "ENGLAND": "GB",
    "DEU": "DE", "GERMANY": "DE", "DEUTSCHLAND": "DE",
    "FRA": "FR", "FRANCE": "FR", "ESP": "ES", "SPAIN": "ES", "ESPAÑA": "ES", "ITA": "IT", "ITALY": "IT", "ITALIA": "IT",
}
GENDER_CODES = {"M": "M", "MALE": "M", "男": "M", "H": "M", "F": "F", "FEMALE": "F", "女": "F", "W": "F"}


@pandas_udf(StringType())
def _nfkc(values: pd.Series) -> pd.Series:
    # Vectorized: pandas' str.normalize runs unicodedata over the whole Arrow batch.
    return values.str.normalize("NFKC")


def normalize_text(col: Column) -> Column:
    """NFKC (full-width letters, digits and spaces become ASCII), whitespace collapsed, trimmed; '' -> null."""
    text = F.trim(F.regexp_replace(_nfkc(col), r"\s+", " "))
    return F.when(text == "", F.lit(None)).otherwise(text)


def clean_name(col: Column) -> Column:
    """A person's display name: normalized, CJK names without inner spaces, shouting or
    all-lower-case Latin names in title case (mixed case is kept: McDonald stays McDonald)."""
    text = normalize_text(col)
    text = F.regexp_replace(text, r"(?<=\p{IsHan})\s+(?=\p{IsHan})", "")
    needs_case = (text == F.upper(text)) | (text == F.lower(text))
    return F.when(needs_case & text.rlike(r"[A-Za-z]"), F.initcap(text)).otherwise(text)


def clean_email(col: Column) -> Column:
    """Lower-cased, normalized e-mail; null when it is not a plausible address."""
    email = F.lower(normalize_text(col))
    return F.when(email.rlike(EMAIL_PATTERN), email)


def is_invalid_email(raw: Column) -> Column:
    """True when a value was given but is not a plausible address."""
    return normalize_text(raw).isNotNull() & clean_email(raw).isNull()


def iso_country(col: Column) -> Column:
    """ISO 3166-1 alpha-2 from alpha-2, alpha-3 or common names; null when unknown."""
    text = F.upper(normalize_text(col))
    aliases = F.create_map(*[p for k, v in COUNTRY_ALIASES.items() for p in (F.lit(k), F.lit(v))])
    code = F.coalesce(F.element_at(aliases, text), text)
    return F.when(code.isin(*_ISO_ALPHA2), code)


def gender_code(col: Column) -> Column:
    """M, F, or null for anything else (unknown, diverse, blank)."""
    codes = F.create_map(*[p for k, v in GENDER_CODES.items() for p in (F.lit(k), F.lit(v))])
    return F.element_at(codes, F.upper(normalize_text(col)))


@pandas_udf(StringType())
def _e164(numbers: pd.Series, regions: pd.Series) -> pd.Series:
    import phonenumbers

    def parse(number, region):
        if number is None or pd.isna(number):
            return None
        try:
            parsed = phonenumbers.parse(number, None if region is None or pd.isna(region) else region)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(parsed):
            return None
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)

    return pd.Series([parse(n, r) for n, r in zip(numbers, regions)], dtype="object")


def e164_phone(phone: Column, country: Column, default_country: str) -> Column:
    """The number in E.164 (+8613812345678), or null when it is not a valid number.

    National formats are read with the record's own country when it has one (a French
    customer in the EU store system writes 06 ...), else with the source's default country.
    """
    return _e164(normalize_text(phone), F.coalesce(iso_country(country), F.lit(default_country)))


def parse_timestamp(col: Column, pattern: str, timezone: str) -> Column:
    """A source's local wall-clock text -> UTC timestamp; null when it does not parse."""
    return F.to_utc_timestamp(F.try_to_timestamp(normalize_text(col), F.lit(pattern)), timezone)


def parse_local_date(col: Column, pattern: str) -> Column:
    """The calendar date as the source wrote it (its local date), from a date or timestamp text."""
    return F.to_date(F.try_to_timestamp(normalize_text(col), F.lit(pattern)))


def parse_decimal(col: Column, decimal_separator: str = ".", *, scale: int = 2) -> Column:
    """Text with the source's decimal separator -> decimal(18, scale); null when not a number."""
    text = normalize_text(col)
    if decimal_separator != ".":
        # A decimal-comma source may also write thousands with dots: 1.234,50
        text = F.regexp_replace(F.regexp_replace(text, r"\.", ""), decimal_separator, ".")
    return text.try_cast(f"decimal(18,{scale})")


def parse_integer(col: Column) -> Column:
    return normalize_text(col).try_cast("long")


def _iso_alpha2() -> list[str]:
    import phonenumbers

    # phonenumbers knows every ISO 3166 region that has a telephone plan ("001" is non-geographic).
    return sorted(r for r in phonenumbers.SUPPORTED_REGIONS if r.isalpha())


_ISO_ALPHA2 = _iso_alpha2()

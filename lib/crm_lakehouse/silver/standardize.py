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
from pyspark.sql.types import StringType, StructField, StructType

# Deliberately simple: one "@", no spaces, a dot in the domain. Full RFC 5322 accepts addresses
# no CRM user types, and rejects none that the defects here produce.
EMAIL_PATTERN = r"^[a-z0-9._%+\-']+@[a-z0-9\-]+(\.[a-z0-9\-]+)*\.[a-z]{2,}$"
GENDER_CODES = {"M": "M", "MALE": "M", "男": "M", "H": "M", "F": "F", "FEMALE": "F", "女": "F", "W": "F"}


@pandas_udf(StringType())
def _nfkc(values: pd.Series) -> pd.Series:
    # Vectorized: pandas' str.normalize runs unicodedata over the whole Arrow batch.
    return values.str.normalize("NFKC")


def _sql_map(mapping: dict[str, str]) -> Column:
    """A literal string map built as one SQL expression (quotes and backslashes escaped)."""
    quote = lambda text: "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"  # noqa: E731
    return F.expr("map(" + ", ".join(f"{quote(k)}, {quote(v)}" for k, v in mapping.items()) + ")")


def _squash(col: Column) -> Column:
    text = F.trim(F.regexp_replace(col, r"\s+", " "))
    return F.when(text == "", F.lit(None)).otherwise(text)


def normalize_text(col: Column) -> Column:
    """NFKC (full-width letters, digits and spaces become ASCII), whitespace collapsed, trimmed; '' -> null."""
    return _squash(_nfkc(col))


def normalize_fields(fields: dict[str, Column]) -> Column:
    """:func:`normalize_text` of several columns in one vectorized call, as a struct of the same names.

    One Arrow round trip per batch of rows instead of one per column: staging normalizes a
    whole record this way, then parses the parts with ``normalized=True``.
    """
    names = list(fields)
    schema = StructType([StructField(name, StringType()) for name in names])

    @pandas_udf(schema)
    def nfkc_all(record: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({name: record[name].str.normalize("NFKC") for name in names})

    normalized = nfkc_all(F.struct(*[col.cast("string").alias(name) for name, col in fields.items()]))
    return F.struct(*[_squash(normalized.getField(name)).alias(name) for name in names])


def _text(col: Column, normalized: bool) -> Column:
    return col if normalized else normalize_text(col)


def clean_name(col: Column, *, normalized: bool = False) -> Column:
    """A person's display name: normalized, CJK names without inner spaces, shouting or
    all-lower-case Latin names in title case (mixed case is kept: McDonald stays McDonald)."""
    text = F.regexp_replace(_text(col, normalized), r"(?<=\p{IsHan})\s+(?=\p{IsHan})", "")
    needs_case = (text == F.upper(text)) | (text == F.lower(text))
    return F.when(needs_case & text.rlike(r"[A-Za-z]"), F.initcap(text)).otherwise(text)


def clean_email(col: Column, *, normalized: bool = False) -> Column:
    """Lower-cased, normalized e-mail; null when it is not a plausible address."""
    email = F.lower(_text(col, normalized))
    return F.when(email.rlike(EMAIL_PATTERN), email)


def is_invalid_email(raw: Column) -> Column:
    """True when a value was given but is not a plausible address."""
    return normalize_text(raw).isNotNull() & clean_email(raw).isNull()


@pandas_udf(StringType())
def _iso_country(values: pd.Series) -> pd.Series:
    from crm_lakehouse.countries import country_code

    return values.map(country_code, na_action="ignore").astype("object")


def iso_country(col: Column, *, normalized: bool = False) -> Column:
    """ISO 3166-1 alpha-2 from a code or a country name in the languages our regions write
    (:mod:`crm_lakehouse.countries`); null when it names no country."""
    return _iso_country(_text(col, normalized))


def gender_code(col: Column, *, normalized: bool = False) -> Column:
    """M, F, or null for anything else (unknown, diverse, blank)."""
    codes = _sql_map(GENDER_CODES)
    return F.element_at(codes, F.upper(_text(col, normalized)))


@pandas_udf(StringType())
def _e164(numbers: pd.Series, countries: pd.Series, defaults: pd.Series) -> pd.Series:
    import phonenumbers

    from crm_lakehouse.countries import country_code

    def parse(number, country, default):
        if number is None or pd.isna(number):
            return None
        region = (country_code(country) if isinstance(country, str) else None) or default
        try:
            parsed = phonenumbers.parse(number, None if region is None or pd.isna(region) else region)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(parsed):
            return None
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)

    return pd.Series([parse(n, c, d) for n, c, d in zip(numbers, countries, defaults)], dtype="object")


def e164_phone(phone: Column, country: Column, default_country: str, *, normalized: bool = False) -> Column:
    """The number in E.164 (+8613812345678), or null when it is not a valid number.

    National formats are read with the record's own country when it has one (a French
    customer in the EU store system writes 06 ...), else with the source's default country.
    """
    # "00" is the international call prefix almost everywhere, but phonenumbers reads it as one
    # only for countries that use it; in the NANP (US) it would otherwise make the number invalid.
    text = F.regexp_replace(_text(phone, normalized), r"^00\s*(?=[1-9])", "+")
    return _e164(text, _text(country, normalized), F.lit(default_country))


def parse_timestamp(col: Column, pattern: str, timezone: str, *, normalized: bool = False) -> Column:
    """A source's local wall-clock text -> UTC timestamp; null when it does not parse."""
    return F.to_utc_timestamp(F.try_to_timestamp(_text(col, normalized), F.lit(pattern)), timezone)


def parse_local_date(col: Column, pattern: str, *, normalized: bool = False) -> Column:
    """The calendar date as the source wrote it (its local date), from a date or timestamp text."""
    return F.to_date(F.try_to_timestamp(_text(col, normalized), F.lit(pattern)))


def parse_decimal(col: Column, decimal_separator: str = ".", *, scale: int = 2, normalized: bool = False) -> Column:
    """Text with the source's decimal separator -> decimal(18, scale); null when not a number."""
    text = _text(col, normalized)
    if decimal_separator != ".":
        # A decimal-comma source may also write thousands with dots: 1.234,50
        text = F.regexp_replace(F.regexp_replace(text, r"\.", ""), decimal_separator, ".")
    return text.try_cast(f"decimal(18,{scale})")


def parse_integer(col: Column, *, normalized: bool = False) -> Column:
    """Whole numbers; '3.0' is 3, '3.5' is not a whole number (null)."""
    text = _text(col, normalized)
    number = text.try_cast("decimal(38,6)")
    return F.when(number == F.floor(number), number.try_cast("long"))


TRUE_WORDS = ("true", "yes", "y", "1", "t", "ja", "oui", "si", "sí", "是")
FALSE_WORDS = ("false", "no", "n", "0", "f", "nein", "non", "否")


def parse_boolean(col: Column) -> Column:
    """true / false from the words exports use (yes/no, 1/0, ja/nein, oui/non…); null otherwise."""
    word = F.lower(F.trim(col))
    return F.when(word.isin(*TRUE_WORDS), F.lit(True)).when(word.isin(*FALSE_WORDS), F.lit(False))

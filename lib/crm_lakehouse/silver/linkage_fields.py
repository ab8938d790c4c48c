"""The fields the matching model compares, derived from silver's customer profiles: names split
into first name and surname, folded (case, diacritics, punctuation) and in Latin letters
(Chinese in pinyin), nicknames' canonical forms, cities and streets written one way, house
numbers apart. :mod:`crm_lakehouse.silver.linkage` trains and scores on them.
"""

from __future__ import annotations

import re
from functools import lru_cache

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

UNIQUE_ID = "unique_id"

# Latin letters with diacritics folded to their base letter: "Müller", "Mueller" and "Muller"
# then differ by one edit at most, which the fuzzy levels score.
_ACCENTED = "àáâãäåāăąçćčďèéêëēėęěìíîïīįłñńňòóôõöøōőùúûüūůűųýÿźżžšśşţťř"
_FOLDED = "aaaaaaaaacccdeeeeeeeeiiiiiilnnnooooooooouuuuuuuuyyzzzsssttr"
# Street-type words written either way in real exports ("Road"/"Rd", "Straße"/"Str.").
_STREET_WORDS = {
    "street": "st", "strasse": "str", "straße": "str", "road": "rd", "avenue": "ave", "boulevard": "blvd",
    "drive": "dr", "square": "sq", "place": "pl", "north": "n", "south": "s", "east": "e", "west": "w",
}


def _folded(col: Column) -> Column:
    """Lower case, diacritics folded, punctuation out, runs of spaces as one."""
    text = F.translate(F.lower(F.trim(col)), _ACCENTED, _FOLDED)
    text = F.regexp_replace(text, r"[^\p{L}\p{N} ]", " ")
    return F.nullif(F.trim(F.regexp_replace(text, r"\s+", " ")), F.lit(""))


def _street(col: Column) -> Column:
    words = F.split(_folded(F.regexp_replace(col, "(?i)stra(ss|ß)e\\b", " str")), " ")
    mapping = F.create_map(*[F.lit(v) for pair in sorted(_STREET_WORDS.items()) for v in pair])
    return F.nullif(F.array_join(F.transform(words, lambda w: F.coalesce(F.element_at(mapping, w), w)), " "),
                    F.lit(""))


def _city(col: Column) -> Column:
    """A city's name folded, its abbreviated words written out ("St. Louis" is "saint louis"), in
    Latin letters ("上海" is "shanghai", as a European system writes it)."""
    # An apostrophe joins ("Xi'an" is "xian", as pinyin of 西安 is); other punctuation separates.
    folded = F.regexp_replace(F.regexp_replace(F.regexp_replace(
        _folded(F.regexp_replace(col, "['’]", "")), r"\bste\b", "sainte"), r"\bst\b", "saint"), r"\bmt\b", "mount")
    return _latin_city_udf(folded)


_HAN = re.compile(r"[\u3400-\u9fff]")


def latin_name_key(name_key: str | None) -> str | None:
    """A name's sorted words with each Chinese word in pinyin: "王 秀英" is "wang xiuying", as a
    system that stores Latin letters writes Wang Xiuying (``pypinyin``, MIT)."""
    if name_key is None or not _HAN.search(name_key):
        return name_key
    from pypinyin import lazy_pinyin

    return " ".join(sorted("".join(lazy_pinyin(word)) for word in name_key.split(" ")))


def latin_city(city: str | None) -> str | None:
    if city is None or not _HAN.search(city):
        return city
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(city.replace(" ", "")))


@F.pandas_udf(StringType())
def _latin_name_key_udf(names: pd.Series) -> pd.Series:
    return names.map(latin_name_key)


@F.pandas_udf(StringType())
def _latin_city_udf(cities: pd.Series) -> pd.Series:
    return cities.map(latin_city)


@lru_cache(maxsize=1)
def _nickname_rows() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(name, the canonical names it may stand for, itself included) from the ``nicknames``
    package's list (Bob -> Robert, Liz -> Elizabeth; Apache-2.0, carltonnorthern/nicknames)."""
    from nicknames import NickNamer

    namer = NickNamer()
    names = set(namer.canonical_lookup) | set(namer.nickname_lookup)
    return tuple(sorted((name, tuple(sorted(namer.canonicals_of(name) | {name}))) for name in names))


def nickname_table(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(list(_nickname_rows()), "name string, canonicals array<string>")


def linkage_records(records: DataFrame, nicknames: DataFrame) -> DataFrame:
    """One row per source record with the fields the model compares, from silver's profile
    columns (``source``, ``source_customer_id``, ``full_name``, ``birth_date``, ``email``,
    ``phone``, ``city``, ``address``).

    A full name is split into its first and last word: "Wang Wei" and "Wei Wang" are then a
    swap, which the name comparison scores as such.
    """
    name = _folded(F.col("full_name"))
    # A Chinese name written without a space ("王伟") is split after its one-character surname,
    # as the same name written "王 伟" is.
    name = F.when(~name.contains(" ") & name.rlike(r"^\p{IsHan}{2,}$"),
                  F.concat(F.substring(name, 1, 1), F.lit(" "), F.substring(name, 2, 100))).otherwise(name)
    words = F.split(name, " ")
    prepared = records.select(
        F.concat_ws(":", "source", "source_customer_id").alias(UNIQUE_ID),
        F.col("source"),
        F.col("source_customer_id"),
        F.element_at(words, 1).alias("first_name"),
        F.when(F.size(words) > 1, F.element_at(words, -1)).alias("surname"),
        F.regexp_replace(name, " ", "").alias("name_concat"),
        F.array_join(F.array_sort(words), " ").alias("name_key"),
        _latin_name_key_udf(F.array_join(F.array_sort(words), " ")).alias("name_latin_key"),
        F.date_format(F.col("birth_date").cast("date"), "yyyy-MM-dd").alias("birth_date"),
        F.lower(F.trim("email")).alias("email"),
        F.nullif(F.substring_index(F.lower(F.trim("email")), "@", 1), F.lit("")).alias("email_user"),
        F.col("phone"),
        _city(F.col("city")).alias("city"),
        _street(F.col("address")).alias("address"),
    )
    # A house number is where two neighbours' addresses differ: "Hauptstr 12" and "Hauptstr 14"
    # are one edit apart, yet they are other people's doors.
    prepared = prepared.select(
        "*",
        F.nullif(F.regexp_extract("address", r"(\d+)", 1), F.lit("")).alias("house_number"),
        F.nullif(F.trim(F.regexp_replace(F.regexp_replace("address", r"\d+\w*", ""), r"\s+", " ")), F.lit(""))
        .alias("street"),
    )
    return (prepared.join(F.broadcast(nicknames.withColumnRenamed("name", "first_name")), "first_name", "left")
            .withColumn("first_name_canonicals",
                        F.coalesce("canonicals", F.when(F.col("first_name").isNotNull(), F.array("first_name"))))
            .drop("canonicals"))

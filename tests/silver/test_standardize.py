"""Standardization helpers on tiny inline data with known answers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from chispa import assert_df_equality
from pyspark.sql import functions as F

from crm_lakehouse.silver.standardize import (
    clean_email, clean_name, e164_phone, gender_code, is_invalid_email, iso_country, parse_decimal,
    parse_local_date, parse_timestamp,
)


def test_names_are_nfkc_normalized_trimmed_and_cased_only_when_shouting(spark):
    df = spark.createDataFrame(
        [("  JOHN  SMITH ",), ("ｊｏｈｎ　ｓｍｉｔｈ",), ("Ronald McDonald",), ("王　伟",), ("王 伟",), ("   ",), (None,)],
        "raw string")
    actual = df.select("raw", clean_name(F.col("raw")).alias("name"))
    expected = spark.createDataFrame(
        [("  JOHN  SMITH ", "John Smith"), ("ｊｏｈｎ　ｓｍｉｔｈ", "John Smith"), ("Ronald McDonald", "Ronald McDonald"),
         ("王　伟", "王伟"), ("王 伟", "王伟"), ("   ", None), (None, None)],
        "raw string, name string")
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_emails_are_lower_cased_and_invalid_ones_dropped(spark):
    rows = [(" Xia.Huang8@QQ.com ", "xia.huang8@qq.com", False), ("jo@@gmail.com", None, True),
            ("jo at gmail.com", None, True), ("jo@", None, True), ("jogmail.com", None, True),
            ("ｊｏ＠ｗｅｂ．ｄｅ", "jo@web.de", False), (None, None, False)]
    df = spark.createDataFrame([(r[0],) for r in rows], "raw string")
    actual = df.select("raw", clean_email(F.col("raw")).alias("email"), is_invalid_email(F.col("raw")).alias("invalid"))
    expected = spark.createDataFrame(rows, "raw string, email string, invalid boolean")
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_phones_become_e164_using_the_records_country_first(spark):
    rows = [("0086 13699647379", "CN", "+8613699647379"), ("(617) 214-1514", "US", "+16172141514"),
            ("06 12 34 56 78", "FR", "+33612345678"),   # national French number in a source defaulting to DE
            ("015112345678", None, "+4915112345678"),   # no country on the record: the source default (DE)
            ("+86 138 7028 6074", "DE", "+8613870286074"),
            ("0000000000", "US", None), ("not a phone", "US", None), (None, "US", None)]
    df = spark.createDataFrame([(r[0], r[1]) for r in rows], "phone string, country string")
    actual = df.select("phone", "country", e164_phone(F.col("phone"), F.col("country"), "DE").alias("e164"))
    assert_df_equality(actual, spark.createDataFrame(rows, "phone string, country string, e164 string"),
                       ignore_row_order=True, ignore_nullable=True)


def test_countries_and_genders_map_to_codes(spark):
    df = spark.createDataFrame([("cn", "男"), ("CHN", "female"), ("Deutschland", "M"), ("XX", "x"), (None, None)],
                               "country string, gender string")
    actual = df.select(iso_country(F.col("country")).alias("country"), gender_code(F.col("gender")).alias("gender"))
    expected = spark.createDataFrame([("CN", "M"), ("CN", "F"), ("DE", "M"), (None, None), (None, None)],
                                     "country string, gender string")
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_local_timestamps_become_utc_and_keep_the_local_date(spark):
    df = spark.createDataFrame([("2026/01/01 07:30:00",), ("2026-13-45",)], "raw string")
    actual = df.select(parse_timestamp(F.col("raw"), "yyyy/MM/dd HH:mm:ss", "Asia/Shanghai").alias("at_utc"),
                       parse_local_date(F.col("raw"), "yyyy/MM/dd HH:mm:ss").alias("local_date"))
    # 07:30 in Shanghai (UTC+8) is 23:30 UTC on the previous day; the local date stays Jan 1.
    expected = spark.createDataFrame([(dt.datetime(2025, 12, 31, 23, 30), dt.date(2026, 1, 1)), (None, None)],
                                     "at_utc timestamp, local_date date")
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_us_twelve_hour_clock_and_eu_decimal_commas(spark):
    df = spark.createDataFrame([("02/11/2025 08:36:57 PM", "1.234,50"), ("02/11/2025 08:36:57 AM", "-3,75")],
                               "raw string, amount string")
    actual = df.select(parse_timestamp(F.col("raw"), "MM/dd/yyyy hh:mm:ss a", "America/New_York").alias("at_utc"),
                       parse_decimal(F.col("amount"), ",").alias("amount"))
    expected = spark.createDataFrame(
        [(dt.datetime(2025, 2, 12, 1, 36, 57), Decimal("1234.50")), (dt.datetime(2025, 2, 11, 13, 36, 57), Decimal("-3.75"))],
        "at_utc timestamp, amount decimal(18,2)")
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)

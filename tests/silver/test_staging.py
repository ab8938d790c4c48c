"""Staging: a source's own columns and conventions -> canonical typed columns, nothing judged or dropped."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from chispa import assert_df_equality
from pyspark.sql import functions as F

from crm_lakehouse.bronze.ingest import CORRUPT_RECORD, bronze_schema
from crm_lakehouse.silver.staging import stage


def bronze_rows(spark, source, rows):
    """Rows shaped like bronze.<source>: the source's columns as strings plus the corrupt column."""
    return spark.createDataFrame(rows, bronze_schema(source)).withColumn("_source", F.lit(source.name))


def test_chinese_store_customers_are_renamed_and_parsed(spark, base_settings):
    source = base_settings.source("cn_store_customers")
    rows = [("CNST1", "王　伟", "0086 13699647379", "Wang.Wei@QQ.com", "男", "1963/04/06", "CN", "上海", "中山路46号",
             "2024/10/31 05:47:36", "2024/10/31 05:47:36", "新增", "17303248560", None),
            ("CNST2", None, None, None, None, None, None, None, None, None, "2025/01/02 10:00:00", "删除", "17357868000", None),
            (None, None, None, None, None, None, None, None, None, None, None, None, None, "CNST3,李")]
    staged = stage(bronze_rows(spark, source, rows), source).select(
        "source_customer_id", "full_name", "phone", "email", "gender", "birth_date", "country", "signup_at",
        "operation", "sequence_number", "is_unparseable")
    expected = spark.createDataFrame(
        [("CNST1", "王伟", "+8613699647379", "wang.wei@qq.com", "M", dt.date(1963, 4, 6), "CN",
          dt.datetime(2024, 10, 30, 21, 47, 36), "insert", 17303248560, False),
         ("CNST2", None, None, None, None, None, None, None, "delete", 17357868000, False),
         (None, None, None, None, None, None, None, None, None, None, True)],
        "source_customer_id string, full_name string, phone string, email string, gender string, birth_date date, "
        "country string, signup_at timestamp, operation string, sequence_number long, is_unparseable boolean")
    assert_df_equality(staged, expected, ignore_row_order=True, ignore_nullable=True)


def test_eu_store_orders_keep_local_date_and_read_decimal_commas(spark, base_settings):
    source = base_settings.source("eu_store_orders")
    rows = [("EUO1", "2", "EUST9", "31/12/2025 23:30", "SKU000014", "3", "1.450,54", "236,84", "eur", "Completed", "EU-S011", None),
            ("EUO2", "1", "EUST9", "N/A", "SKU000001", "1", "-3,75", "0,00", "XXX", "completed", None, None)]
    staged = stage(bronze_rows(spark, source, rows), source).select(
        "order_id", "line_number", "ordered_at", "order_local_date", "quantity", "unit_price", "discount", "currency",
        "status", F.col("raw.ordered_at").alias("raw_ordered_at"))
    expected = spark.createDataFrame(
        [("EUO1", 2, dt.datetime(2025, 12, 31, 22, 30), dt.date(2025, 12, 31), 3, Decimal("1450.54"), Decimal("236.84"),
          "EUR", "completed", "31/12/2025 23:30"),
         ("EUO2", 1, None, None, 1, Decimal("-3.75"), Decimal("0.00"), "XXX", "completed", "N/A")],
        "order_id string, line_number long, ordered_at timestamp, order_local_date date, quantity long, "
        "unit_price decimal(18,2), discount decimal(18,2), currency string, status string, raw_ordered_at string")
    assert_df_equality(staged, expected, ignore_row_order=True, ignore_nullable=True)


def test_raw_record_keeps_what_was_delivered(spark, base_settings):
    source = base_settings.source("global_erp_products")
    rows = [("SKU1", "Aurora Lamp M12", "Home", "Aurora", "12.50", "2024-01-01 00:00:00", None),
            (None, None, None, None, None, None, "SKU2,Broken")]
    staged = stage(bronze_rows(spark, source, rows), source).select("product_id", "list_price_usd", "raw_record")
    expected = spark.createDataFrame(
        [("SKU1", Decimal("12.50"), '{"product_id":"SKU1","product_name":"Aurora Lamp M12","category":"Home",'
                                    '"brand":"Aurora","list_price_usd":"12.50","updated_at":"2024-01-01 00:00:00"}'),
         (None, None, "SKU2,Broken")],
        "product_id string, list_price_usd decimal(18,2), raw_record string")
    assert_df_equality(staged, expected, ignore_row_order=True, ignore_nullable=True)
    assert CORRUPT_RECORD not in staged.columns

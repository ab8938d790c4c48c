"""Staging: a source's own columns and conventions -> canonical typed columns, nothing judged or dropped."""

from __future__ import annotations

import dataclasses
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


def orders_source(base_settings, **changes):
    from crm_lakehouse.config.fields import parse_mapping as _mapping

    source = base_settings.source("eu_web_orders")
    columns = ("Invoice", "Sku", "Qty", "When", "Total", "Customer", "Land")
    mapping = _mapping(changes.pop("mapping"), columns, __import__("crm_lakehouse.entities", fromlist=["x"]).ENTITIES[
        "orders"].fields, "orders", "f", "mapping")
    return dataclasses.replace(source, columns=columns, mapping=mapping, format="csv", currency="GBP",
                               timestamp_format="yyyy-MM-dd HH:mm", **changes)


LOG = [("INV1", "A", "2", "2026-01-05 10:00", "10.00", "C1", "EIRE"),
       ("INV1", "B", "1", "2026-01-05 10:00", "4.50", "C1", "EIRE"),
       ("INV2", "A", "-1", "2026-01-06 11:00", "5.00", None, "Deutschland"),
       ("INV1", "A", "2", "2026-01-05 10:00", "10.00", "C1", "EIRE")]


def test_a_log_without_status_currency_unit_price_or_line_numbers_gets_them_from_its_yaml(spark, base_settings):
    source = orders_source(base_settings, negative_quantity="return", mapping={
        "Invoice": "order_id", "Sku": "product_id", "Qty": "quantity", "When": "ordered_at", "Total": "line_total",
        "Customer": "source_customer_id", "Land": "country", "line_number": {"generated": "line_in_order"}})
    bronze = spark.createDataFrame([(*r, None) for r in LOG], bronze_schema(source)).withColumn("_source", F.lit(source.name)) \
        .withColumn("_source_file", F.lit("file:/landing/day1.csv")).withColumn("_file_row", F.monotonically_increasing_id())
    staged = stage(bronze, source).select("order_id", "line_number", "product_id", "quantity", "unit_price", "line_total",
                                          "currency", "status", "country", "source_customer_id")
    expected = spark.createDataFrame([
        # No status column: completed; negative_quantity: return turns the reversal into a return.
        ("INV1", 1, "A", 2, Decimal("5.00"), Decimal("10.00"), "GBP", "completed", "IE", "C1"),
        ("INV1", 2, "B", 1, Decimal("4.50"), Decimal("4.50"), "GBP", "completed", "IE", "C1"),
        ("INV2", 1, "A", -1, Decimal("5.00"), Decimal("5.00"), "GBP", "returned", "DE", None),
        # The same line delivered twice in the file gets the next position: a log cannot tell a
        # repeat from a second identical purchase, so both are kept.
        ("INV1", 3, "A", 2, Decimal("5.00"), Decimal("10.00"), "GBP", "completed", "IE", "C1"),
    ], "order_id string, line_number int, product_id string, quantity long, unit_price decimal(18,2), "
       "line_total decimal(18,2), currency string, status string, country string, source_customer_id string")
    assert_df_equality(staged, expected, ignore_row_order=True, ignore_nullable=True)


def test_customer_attributes_are_typed_and_a_value_of_the_wrong_type_is_flagged(spark, base_settings):
    from crm_lakehouse.config.fields import parse_attributes as _attributes

    source = base_settings.source("eu_call_center_customers")
    attributes = _attributes({"plan": "sex", "monthly": {"column": "town", "type": "decimal"},
                              "churned": {"column": "address_line", "type": "boolean"}},
                             source.columns, "customers", "f", "attributes")
    source = dataclasses.replace(source, attributes=attributes)
    row = lambda town, address: ("C1", "Ann", None, None, "Gold", None, "DE", town, address, None, None, "INSERT", "1", None)  # noqa: E731
    bronze = spark.createDataFrame([row("29.85", "Yes"), row(" 1.889,5 ", "0"), row("n/a", "maybe"), row(" ", None)],
                                   bronze_schema(source)).withColumn("_source", F.lit(source.name))
    staged = [(r["attributes"], r["has_invalid_attribute"]) for r in
              stage(bronze, source).select("attributes", "has_invalid_attribute").collect()]
    assert sorted(staged, key=str) == sorted([
        ({"churned": "true", "monthly": "29.85", "plan": "Gold"}, False),
        ({"churned": "false", "plan": "Gold"}, True),            # "1.889,5" is not a number with "." decimals
        ({"plan": "Gold"}, True),
        ({"plan": "Gold"}, False),                                # blank is missing, not wrong
    ], key=str)

"""Mapping entries as Spark columns: constants, value maps, expressions that fail on some rows
without failing the batch, and expressions checked before any row is read."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from crm_lakehouse.config import FieldSpec
from crm_lakehouse.config.fields import field_spec as _field_spec
from crm_lakehouse.errors import ConfigError
from crm_lakehouse.mapping import check_expressions, failure_labels, mapped_field

COLUMNS = ("Status", "Qty", "Country", "Day", "Time")


def spec(raw: dict) -> FieldSpec:
    return _field_spec(raw, COLUMNS, "sources/x.yaml", "sources[0].mapping.f")


def rows(spark):
    return spark.createDataFrame([("Shipped", "3", "EIRE", "20240131", "0930"), ("RETURNED", "n/a", "Germany", "2024013", "x"),
                                  (" cancelled ", "", "Unspecified", None, None), (None, "7", None, "20240229", "2359")],
                                 ", ".join(f"{c} string" for c in COLUMNS))


def text(df, raw: dict):
    field = mapped_field(df, spec(raw))
    return field.text


def test_value_maps_match_trimmed_and_case_insensitive_with_a_default_and_nulls(spark):
    df = rows(spark)
    status = text(df, {"column": "Status", "values": {"shipped": "completed", "Returned": "returned"}, "default": "pending"})
    country = text(df, {"column": "Country", "values": {"EIRE": "IE", "Unspecified": None}})
    actual = df.select(F.col("Status").alias("delivered"), status.alias("status"), country.alias("country"))
    expected = spark.createDataFrame([("Shipped", "completed", "IE"), ("RETURNED", "returned", "Germany"),
                                      (" cancelled ", "pending", None), (None, None, None)],
                                     "delivered string, status string, country string")
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_unquoted_yes_and_no_in_yaml_still_match_the_text(spark):
    df = spark.createDataFrame([("Yes",), ("no",), ("Maybe",)], "Status string")
    # yaml.safe_load("{Yes: 'true', No: 'false'}") gives boolean keys.
    churned = mapped_field(df, _field_spec({"column": "Status", "values": {True: "true", False: "false"}},
                                           ("Status",), "f", "k")).text
    assert [r[0] for r in df.select(churned).collect()] == ["true", "false", "Maybe"]


def test_a_constant_is_the_same_text_on_every_row(spark):
    df = rows(spark)
    assert {r[0] for r in df.select(text(df, {"value": "GBP"})).collect()} == {"GBP"}


def test_an_expression_failing_on_some_rows_flags_them_and_keeps_strict_values_elsewhere(spark):
    df = rows(spark)
    quantity = mapped_field(df, spec({"expr": "cast(Qty AS int) * 2"}))
    assert quantity.text is None and quantity.typed is not None   # an integer, used as such
    actual = df.select("Qty", quantity.typed.alias("quantity"), quantity.failed.alias("failed"))
    # 'n/a' and '' cannot be cast under ANSI mode: those rows fail; null input gives null, not a failure.
    expected = spark.createDataFrame([("3", 6, False), ("n/a", None, True), ("", None, True), ("7", 14, False)],
                                     "Qty string, quantity int, failed boolean")
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    labels = failure_labels({"quantity": (quantity.failed, spec({"expr": "cast(Qty AS int) * 2"}))})
    assert [r[0] for r in df.select(labels).collect()] == [
        [], ["expression_failed(quantity: cast(Qty AS int) * 2)"], ["expression_failed(quantity: cast(Qty AS int) * 2)"], []]


def test_a_timestamp_expression_is_typed_and_a_failed_parse_is_a_failure(spark):
    df = rows(spark)
    ordered = mapped_field(df, spec({"expr": "to_timestamp(concat(Day, Time), 'yyyyMMddHHmm')"}))
    got = [(r[0], r[1]) for r in df.select(ordered.typed, ordered.failed).collect()]
    assert got[0] == (dt.datetime(2024, 1, 31, 9, 30), False)
    assert got[1] == (None, True) and got[3] == (dt.datetime(2024, 2, 29, 23, 59), False)


def test_try_to_binary_still_catches_errors_raised_beneath_it(spark):
    # mapping.py relies on this: if a Spark upgrade changes it, expressions could fail batches again.
    probe = spark.range(1).select(F.expr("try_to_binary(to_json(named_struct('v', cast('x' AS int))), 'utf-8')"))
    assert probe.first()[0] is None


def test_expressions_are_checked_against_the_columns_before_any_row_is_read(spark, base_settings):
    orders = base_settings.source("eu_web_orders")

    def with_expr(expr: str):
        broken = dataclasses.replace(orders, mapping={**orders.mapping, "status": FieldSpec(expr=expr, where="eu.yaml: x")})
        return dataclasses.replace(base_settings, sources=(broken,))

    check_expressions(spark, with_expr("CASE WHEN status = 'X' THEN 'cancelled' ELSE 'completed' END"))
    for expr, fragment in (("upper(stauts)", "stauts"), ("concat(status,", "does not work"), ("no_such_fn(qty)", "no_such_fn")):
        with pytest.raises(ConfigError) as error:
            check_expressions(spark, with_expr(expr))
        message = str(error.value)
        assert fragment in message and message.startswith("eu.yaml: x:") and "fix:" in message and "\n" not in message

"""Staging: one bronze source's rows -> its entity's canonical, typed columns.

Only renames and parses, driven by the source's declared mapping and conventions; no rows are
dropped or judged here (quality rules come after). For every canonical field the source maps,
``raw.<field>`` keeps the text as delivered, so a rule can tell "missing" from "unparseable".
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from crm_lakehouse.bronze.ingest import CORRUPT_RECORD, FILE_PROBLEM
from crm_lakehouse.config import SourceConfig
from crm_lakehouse.entities import DATE, DECIMAL, ENTITIES, INTEGER, TIMESTAMP
from crm_lakehouse.silver.standardize import (
    clean_email, clean_name, e164_phone, gender_code, iso_country, normalize_fields, parse_decimal, parse_integer,
    parse_local_date, parse_timestamp,
)

# Decimal places per money-like field; FX rates need more than cents.
DECIMAL_SCALE = {"usd_per_unit": 6}
# Timestamps whose local calendar date analysts group by (the day the customer saw).
LOCAL_DATE_OF = {"ordered_at": "order_local_date", "occurred_at": "occurred_local_date"}
NORMALIZED = "_normalized"
LINEAGE = ("_source", "_region", "_channel", "_source_file", "_ingested_at", "_batch_id")


def stage(bronze: DataFrame, source: SourceConfig) -> DataFrame:
    """Canonical columns for ``source.entity`` parsed with the source's conventions.

    Returns every canonical field of the entity (null where the source has no column for it),
    the local date of event timestamps, ``raw`` (the delivered text per canonical field),
    ``raw_record`` (the whole delivered record as JSON, or the unparseable line) and lineage.
    """
    spec = ENTITIES[source.entity]
    raw_of = {field: F.col(f"`{column}`") for column, field in source.mapping.items()}
    missing = F.lit(None).cast("string")
    bronze = bronze.withColumn(NORMALIZED, normalize_fields(raw_of))
    typed: list[Column] = []
    for field, kind in spec.fields.items():
        text = F.col(f"{NORMALIZED}.{field}") if field in raw_of else missing
        if kind == TIMESTAMP:
            typed.append(parse_timestamp(text, source.timestamp_format, source.timezone, normalized=True).alias(field))
            if field in LOCAL_DATE_OF:
                typed.append(parse_local_date(text, source.timestamp_format, normalized=True).alias(LOCAL_DATE_OF[field]))
        elif kind == DATE:
            typed.append(parse_local_date(text, source.date_format, normalized=True).alias(field))
        elif kind == DECIMAL:
            typed.append(parse_decimal(text, source.decimal_separator, scale=DECIMAL_SCALE.get(field, 2),
                                       normalized=True).alias(field))
        elif kind == INTEGER:
            typed.append(parse_integer(text, normalized=True).alias(field))
        else:
            typed.append(text.alias(field))
    has_corrupt = CORRUPT_RECORD in bronze.columns
    raw_record = F.coalesce(F.col(CORRUPT_RECORD), F.to_json(F.struct(*[F.col(f"`{c}`") for c in source.columns]))) \
        if has_corrupt else F.to_json(F.struct(*[F.col(f"`{c}`") for c in source.columns]))
    staged = bronze.select(
        *typed,
        F.struct(*[raw_of.get(f, missing).alias(f) for f in spec.fields]).alias("raw"),
        raw_record.alias("raw_record"),
        (F.col(CORRUPT_RECORD).isNotNull() if has_corrupt else F.lit(False)).alias("is_unparseable"),
        (F.col(FILE_PROBLEM) if FILE_PROBLEM in bronze.columns else F.lit(None).cast("string")).alias("file_problem"),
        *[F.col(c) for c in LINEAGE if c in bronze.columns],
    )
    return _ENTITY_STEPS.get(source.entity, lambda df, _: df)(staged, source)


def _customers(df: DataFrame, source: SourceConfig) -> DataFrame:
    codes = F.create_map(*[p for op, code in source.cdc.operations.items() for p in (F.lit(code), F.lit(op))])
    # The typed columns hold the normalized text here (see stage), so no second NFKC pass.
    return (df.withColumn("full_name", clean_name(F.col("full_name"), normalized=True))
            .withColumn("email", clean_email(F.col("email"), normalized=True))
            .withColumn("phone", e164_phone(F.col("phone"), F.col("country"), source.phone_country, normalized=True))
            .withColumn("country", iso_country(F.col("country"), normalized=True))
            .withColumn("gender", gender_code(F.col("gender"), normalized=True))
            .withColumn("operation", F.element_at(codes, F.col("operation"))))


def _orders(df: DataFrame, source: SourceConfig) -> DataFrame:
    return df.withColumn("currency", F.upper(F.col("currency"))).withColumn("status", F.lower(F.col("status")))


def _fx_rates(df: DataFrame, source: SourceConfig) -> DataFrame:
    return df.withColumn("currency", F.upper(F.col("currency")))


_ENTITY_STEPS = {"customers": _customers, "orders": _orders, "fx_rates": _fx_rates}

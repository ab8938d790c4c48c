"""Staging: one bronze source's rows -> its entity's canonical, typed columns.

Only maps and parses, driven by the source's declared mapping and conventions; no rows are
dropped or judged here (quality rules come after). For every canonical field the source maps,
``raw.<field>`` keeps the text as delivered (or as the mapping produced it), so a rule can tell
"missing" from "unparseable"; expressions that failed on a row are listed in
``_expression_failures``.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, StringType, TimestampType

from crm_lakehouse.bronze.ingest import CORRUPT_RECORD, FILE_MODIFIED_AT, FILE_PROBLEM, FILE_ROW
from crm_lakehouse.config import SourceConfig
from crm_lakehouse.entities import (
    BOOLEAN, CDC, DATE, DECIMAL, ENTITIES, INCREMENTAL, INLINE_CUSTOMER_FIELDS, INLINE_CUSTOMER_PREFIX, INTEGER,
    SNAPSHOT, TIMESTAMP,
)
from crm_lakehouse.mapping import failure_labels, mapped_field
from crm_lakehouse.silver.quality import EXPRESSION_FAILURES
from crm_lakehouse.silver.standardize import (
    clean_email, clean_name, e164_phone, gender_code, iso_country, normalize_fields, parse_boolean, parse_decimal,
    parse_integer, parse_local_date, parse_timestamp,
)

# Decimal places per money-like field; FX rates need more than cents.
DECIMAL_SCALE = {"rate": 6}
# Timestamps whose local calendar date analysts group by (the day the customer saw).
LOCAL_DATE_OF = {"ordered_at": "order_local_date", "occurred_at": "occurred_local_date"}
NORMALIZED = "_normalized"
LINEAGE = ("_source", "_region", "_channel", "_source_file", "_ingested_at", "_batch_id")
# The record's export time (snapshot and incremental sources): when its file was written.
EXPORTED_AT = "_exported_at"


def stage(bronze: DataFrame, source: SourceConfig) -> DataFrame:
    """Canonical columns for ``source.entity`` parsed with the source's conventions.

    Returns every canonical field of the entity (null where the source does not map it), the
    local date of event timestamps, ``raw`` (the delivered text per canonical field),
    ``raw_record`` (the whole delivered record as JSON, or the unparseable line),
    ``_expression_failures`` and lineage.
    """
    spec = ENTITIES[source.entity]
    fields = {f: k for f, k in spec.fields.items() if source.inline_customers or f not in INLINE_CUSTOMER_FIELDS}
    mapped = {name: mapped_field(bronze, field_spec) for name, field_spec in source.mapping.items()
              if field_spec.generated is None}
    attributes = {name: mapped_field(bronze, field_spec) for name, field_spec in source.attributes.items()}
    text_of = {name: m.text for name, m in mapped.items() if m.text is not None}
    text_of.update({f"{_ATTRIBUTE}{name}": m.text for name, m in attributes.items() if m.text is not None})
    failures = {name: (m.failed, source.mapping.get(name) or source.attributes[name.removeprefix(_ATTRIBUTE)])
                for name, m in [*mapped.items(), *[(f"{_ATTRIBUTE}{n}", m) for n, m in attributes.items()]]
                if m.failed is not None}
    missing = F.lit(None).cast("string")
    bronze = bronze.withColumn(NORMALIZED, normalize_fields(text_of) if text_of else F.struct(F.lit(None).alias("_")))
    typed: list[Column] = []
    for field, kind in fields.items():
        value = mapped.get(field)
        if value is not None and value.typed is not None:
            typed += _typed_expression(value, field, kind, source)
            continue
        text = F.col(f"{NORMALIZED}.`{field}`") if field in text_of else missing
        typed += _parsed(text, field, kind, source)
    has_corrupt = CORRUPT_RECORD in bronze.columns
    record = F.to_json(F.struct(*[F.col(f"`{c}`") for c in source.columns]))
    raw_record = F.coalesce(F.col(CORRUPT_RECORD), record) if has_corrupt else record
    raw_texts = {name: (m.text if m.text is not None else m.typed.cast("string")) for name, m in mapped.items()}
    staged = bronze.select(
        *typed,
        F.struct(*[raw_texts.get(f, missing).alias(f) for f in fields]).alias("raw"),
        _attribute_map(attributes, source).alias("attributes") if source.attributes else
        F.lit(None).cast("map<string,string>").alias("attributes"),
        _attribute_problems(attributes, source).alias("has_invalid_attribute"),
        raw_record.alias("raw_record"),
        (F.col(CORRUPT_RECORD).isNotNull() if has_corrupt else F.lit(False)).alias("is_unparseable"),
        (F.col(FILE_PROBLEM) if FILE_PROBLEM in bronze.columns else F.lit(None).cast("string")).alias("file_problem"),
        failure_labels(failures).alias(EXPRESSION_FAILURES),
        _exported_at(bronze, source).alias(EXPORTED_AT),
        (F.col(FILE_ROW) if FILE_ROW in bronze.columns else F.lit(None).cast("long")).alias(FILE_ROW),
        *[F.col(c) for c in LINEAGE if c in bronze.columns],
    )
    return _ENTITY_STEPS.get(source.entity, lambda df, _: df)(staged, source)


_ATTRIBUTE = "attribute:"


def _parsed(text: Column, field: str, kind: str, source: SourceConfig) -> list[Column]:
    if kind == TIMESTAMP:
        columns = [parse_timestamp(text, source.timestamp_format, source.timezone, normalized=True).alias(field)]
        if field in LOCAL_DATE_OF:
            columns.append(parse_local_date(text, source.timestamp_format, normalized=True).alias(LOCAL_DATE_OF[field]))
        return columns
    if kind == DATE:
        return [parse_local_date(text, source.date_format, normalized=True).alias(field)]
    if kind == DECIMAL:
        return [parse_decimal(text, source.decimal_separator, scale=DECIMAL_SCALE.get(field, 2),
                              normalized=True).alias(field)]
    if kind == INTEGER:
        return [parse_integer(text, normalized=True).alias(field)]
    return [text.alias(field)]


def _typed_expression(value, field: str, kind: str, source: SourceConfig) -> list[Column]:
    """A field whose expression already returns a typed value: timestamps are the source's
    local wall-clock time (as a parsed column would be), numbers are cast to the field's type."""
    column = value.typed
    if kind == TIMESTAMP:
        wall_clock = column.cast(TimestampType())
        columns = [F.to_utc_timestamp(wall_clock, source.timezone).alias(field)]
        if field in LOCAL_DATE_OF:
            columns.append(F.to_date(wall_clock).alias(LOCAL_DATE_OF[field]))
        return columns
    if kind == DATE:
        return [column.cast(DateType()).alias(field)]
    if kind == DECIMAL:
        return [column.try_cast(f"decimal(18,{DECIMAL_SCALE.get(field, 2)})").alias(field)]
    if kind == INTEGER:
        return [column.try_cast("long").alias(field)]
    return [column.cast(StringType()).alias(field)]


def _attribute_value(text: Column, kind: str, source: SourceConfig) -> Column:
    """An attribute's text in its type's canonical spelling (ISO dates, true/false, plain
    numbers); null when it does not parse as that type."""
    if kind == DATE:
        return parse_local_date(text, source.date_format, normalized=True).cast("string")
    if kind == TIMESTAMP:
        return F.date_format(parse_timestamp(text, source.timestamp_format, source.timezone, normalized=True),
                             "yyyy-MM-dd HH:mm:ss")
    if kind == DECIMAL:
        return parse_decimal(text, source.decimal_separator, scale=6, normalized=True).cast("double").cast("string")
    if kind == INTEGER:
        return parse_integer(text, normalized=True).cast("string")
    if kind == BOOLEAN:
        return parse_boolean(text).cast("string")
    return text


def _attribute_texts(attributes: dict, source: SourceConfig) -> dict[str, tuple[Column, Column]]:
    out = {}
    for name, value in attributes.items():
        text = F.col(f"{NORMALIZED}.`{_ATTRIBUTE}{name}`") if value.text is not None else value.typed.cast("string")
        out[name] = (text, _attribute_value(text, source.attributes[name].kind, source))
    return out


def _attribute_map(attributes: dict, source: SourceConfig) -> Column:
    entries = [F.struct(F.lit(name).alias("key"), parsed.alias("value"))
               for name, (_, parsed) in sorted(_attribute_texts(attributes, source).items())]
    return F.map_from_entries(F.filter(F.array(*entries), lambda entry: entry["value"].isNotNull()))


def _attribute_problems(attributes: dict, source: SourceConfig) -> Column:
    problems = [text.isNotNull() & parsed.isNull() for text, parsed in _attribute_texts(attributes, source).values()]
    return F.greatest(*problems, F.lit(False)) if problems else F.lit(False)


def _exported_at(bronze: DataFrame, source: SourceConfig) -> Column:
    """A snapshot or incremental file's export time (UTC): from its name, or its arrival."""
    if source.mode not in (SNAPSHOT, INCREMENTAL):
        return F.lit(None).cast("timestamp")
    if source.sequence.source == "file_name":
        name = F.regexp_extract(F.element_at(F.split(F.col("_source_file"), "/"), -1), source.sequence.pattern, 1)
        local = F.try_to_timestamp(F.nullif(name, F.lit("")), F.lit(source.sequence.format))
        return F.to_utc_timestamp(local, source.timezone)
    return F.col(FILE_MODIFIED_AT) if FILE_MODIFIED_AT in bronze.columns else F.lit(None).cast("timestamp")


def _customers(df: DataFrame, source: SourceConfig) -> DataFrame:
    if source.mode == CDC:
        codes = F.create_map(*[p for op, code in source.cdc.operations.items() for p in (F.lit(code), F.lit(op))])
        operation = F.element_at(codes, F.col("operation"))
    else:
        # Derived later by comparing each record with its previous state (silver/snapshots.py);
        # the file's export time orders the changes.
        operation = F.lit(None).cast("string")
        df = df.withColumn("sequence_number", F.unix_micros(F.col(EXPORTED_AT)))
    return standardize_profile(df, source).withColumn("operation", operation)


def standardize_profile(df: DataFrame, source: SourceConfig, prefix: str = "") -> DataFrame:
    """Names, e-mails, phones, countries and gender of customer records in their clean form; the
    typed columns hold normalized text already (see stage), so there is no second NFKC pass."""
    col = lambda name: F.col(prefix + name)  # noqa: E731
    return (df.withColumn(prefix + "full_name", clean_name(col("full_name"), normalized=True))
            .withColumn(prefix + "email", clean_email(col("email"), normalized=True))
            .withColumn(prefix + "phone", e164_phone(col("phone"), col("country"), source.phone_country, normalized=True))
            .withColumn(prefix + "country", iso_country(col("country"), normalized=True))
            .withColumn(prefix + "gender", gender_code(col("gender"), normalized=True)))


def _orders(df: DataFrame, source: SourceConfig) -> DataFrame:
    """Currency and status defaults, line totals, generated line numbers, returns by sign."""
    # A source's currency: applies to lines without one (and to every line of a source that
    # has no currency column at all).
    currency = F.coalesce(F.upper(F.col("currency")), F.lit(source.currency))
    # No status column means every line is a completed sale.
    status = F.lower(F.col("status")) if "status" in source.mapping else F.lit("completed")
    if source.negative_quantity == "return":
        status = F.when((F.col("quantity") < 0) & status.isin("completed", "pending"), F.lit("returned")).otherwise(status)
    line_total = F.col("line_total")
    unit_price = F.coalesce(F.col("unit_price"), F.when(F.col("quantity") != 0, F.abs(line_total / F.col("quantity"))))
    df = (df.withColumn("currency", currency).withColumn("status", status)
          .withColumn("unit_price", unit_price.cast("decimal(18,2)")))
    spec = source.mapping.get("line_number")
    if spec is not None and spec.generated == "line_in_order":
        # Position of the row among its order's rows in the file (re-delivering the file gives
        # the same numbers, so its lines replace themselves instead of doubling).
        position = Window.partitionBy("_source_file", "order_id").orderBy(F.col(FILE_ROW).asc_nulls_last(), "raw_record")
        df = df.withColumn("line_number", F.when(F.col("order_id").isNotNull(), F.row_number().over(position)))
    if source.inline_customers:
        df = standardize_profile(df, source, prefix=INLINE_CUSTOMER_PREFIX)
    return df.withColumn("country", iso_country(F.col("country"), normalized=True))


def _fx_rates(df: DataFrame, source: SourceConfig) -> DataFrame:
    return df.withColumn("currency", F.upper(F.col("currency")))


_ENTITY_STEPS = {"customers": _customers, "orders": _orders, "fx_rates": _fx_rates}

"""Turn canonical rows into each source's own file: its columns, formats, codes and defects.

Everything that differs between sources comes from ``conf/sources/*.yaml``: column names,
date and timestamp patterns, time zone, decimal separator, CDC operation codes, file format,
delimiter and encoding. Defects are injected at the configured rates and flagged, so the exact
counts can be written beside the data.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from crm_lakehouse.config import SourceConfig
from crm_lakehouse.entities import DATE, DECIMAL, ENTITIES, INTEGER, TIMESTAMP
from crm_lakehouse.generator import names
from crm_lakehouse.generator.columns import pick, sql_identifier, sql_string, uniform
from crm_lakehouse.generator.typos import NAME_DEFECTS, TYPO_DEFECTS, inject_typos

# Value defects each entity can carry; every source also gets exact duplicates and, for text
# formats, malformed lines.
VALUE_DEFECTS = {
    "customers": ("name_variant", "invalid_email", "placeholder_email", "placeholder_phone", "missing_key",
                  "unparseable_date", *TYPO_DEFECTS, "cross_script"),
    "orders": ("missing_key", "unparseable_date", "negative_amount", "unknown_currency"),
    "interactions": ("missing_key", "unparseable_date"),
    "products": (),
    "fx_rates": (),
}
ROW_DEFECTS = ("exact_duplicate", "malformed_line")
# The field a missing_key / unparseable_date defect hits, per entity.
KEY_FIELD = {"customers": "source_customer_id", "orders": "order_id", "interactions": "interaction_id"}
DATE_FIELD = {"customers": "signup_at", "orders": "ordered_at", "interactions": "occurred_at"}
GARBAGE_DATES = ["00/00/0000", "N/A", "2026-13-45", "31/02/2026", "yesterday", "#VALUE!"]
FULL_WIDTH = "".join(chr(ord(c) + 0xFEE0) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
HALF_WIDTH = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
MONEY_DECIMALS = {"rate": 6}


def render(df: DataFrame, entity: str, sources: list[SourceConfig], seed: int, rates: dict[str, float]) -> DataFrame:
    """Canonical typed rows -> canonical-named string columns written the source's way, with defect flags.

    The result keeps ``source`` and ``row_key`` and adds one boolean ``defect_<name>`` column per
    defect (value defects, exact duplicates, malformed lines).
    """
    spec = ENTITIES[entity]
    by_name = {s.name: s for s in sources}
    source = F.col("source")

    def per_source(build) -> Column:
        expr = None
        for name, config in by_name.items():
            value = build(config)
            expr = F.when(source == name, value) if expr is None else expr.when(source == name, value)
        return expr

    # Typing errors hit the typed values (a birth date is mistyped as a date, then written the
    # source's way).
    out = inject_typos(df, seed, rates) if entity == "customers" else df
    # Each value is written from its own typed column only, so all of them go in one projection
    # (each withColumn analyses the whole plan again).
    written: dict[str, Column] = {}
    for field, kind in spec.fields.items():
        if field not in df.columns:
            continue
        col = F.col(field)
        if kind == TIMESTAMP:
            written[field] = per_source(lambda c, col=col: F.date_format(
                F.from_utc_timestamp(col, c.timezone), c.timestamp_format))
        elif kind == DATE:
            written[field] = per_source(lambda c, col=col: F.date_format(col, c.date_format))
        elif kind == DECIMAL:
            decimals = MONEY_DECIMALS.get(field, 2)
            written[field] = per_source(lambda c, col=col, d=decimals: F.regexp_replace(
                F.format_string(f"%.{d}f", col), r"\.", c.decimal_separator))
        elif kind == INTEGER:
            written[field] = col.cast("string")
    if "operation" in df.columns:
        written["operation_canonical"] = F.col("operation")
        written["operation"] = per_source(lambda c: F.element_at(
            F.create_map(*[p for op, code in c.cdc.operations.items() for p in (F.lit(op), F.lit(code))]),
            F.col("operation")))
    if entity == "customers":
        written["gender"] = per_source(lambda c: _gender_code(c, F.col("gender")))
    out = out.withColumns(written)
    return _inject_defects(out, entity, seed, rates, text_formats={n for n, c in by_name.items() if c.format != "parquet"})


def _gender_code(source: SourceConfig, gender: Column) -> Column:
    if source.region == "cn" and source.format == "csv":
        return F.when(gender == "F", "女").when(gender == "M", "男")
    if source.format == "json":
        return F.when(gender == "F", "female").when(gender == "M", "male")
    return gender


def _inject_defects(df: DataFrame, entity: str, seed: int, rates: dict[str, float], text_formats: set[str]) -> DataFrame:
    """Flag each defect in its own column first, then damage the value: a flag computed from a
    column that was already overwritten would look at the damaged value instead."""
    key = F.col("row_key")
    is_live = F.col("operation_canonical") != "delete" if "operation_canonical" in df.columns else F.lit(True)
    defects = VALUE_DEFECTS[entity]
    rate = lambda name: float(rates.get(name, 0.0))  # noqa: E731
    flag = lambda name: F.col(f"defect_{name}")  # noqa: E731

    def damage(frame: DataFrame, name: str, hit: Column, field: str, value: Column) -> DataFrame:
        frame = frame.withColumn(f"defect_{name}", F.coalesce(hit, F.lit(False)))
        return frame.withColumn(field, F.when(flag(name), value).otherwise(F.col(field)))

    mistyped_name = F.lit(False)
    for name in NAME_DEFECTS if "name_variant" in defects else ():
        mistyped_name = mistyped_name | flag(name)
    if "name_variant" in defects:
        variant = _name_variant(F.col("full_name"), uniform(seed, "variant_kind", key))
        hit = (uniform(seed, "name_variant", key) < rate("name_variant")) & F.col("full_name").isNotNull() & \
            (variant != F.col("full_name")) & ~mistyped_name
        df = damage(df, "name_variant", hit, "full_name", variant)
    if "invalid_email" in defects:
        # One draw decides both, so a record is never counted as invalid and placeholder at once.
        draw = uniform(seed, "email_defect", key)
        has_email = F.col("email").isNotNull() & is_live
        broken = pick(["@@", " at ", "@", ""], uniform(seed, "email_break", key))
        invalid_value = F.when(broken == "@", F.concat(F.substring_index("email", "@", 1), F.lit("@"))) \
            .otherwise(F.regexp_replace("email", "@", broken))
        df = df.withColumn("defect_placeholder_email", F.coalesce(
            has_email & (draw >= rate("invalid_email")) & (draw < rate("invalid_email") + rate("placeholder_email")),
            F.lit(False)))
        df = damage(df, "invalid_email", has_email & (draw < rate("invalid_email")), "email", invalid_value)
        df = df.withColumn("email", F.when(flag("placeholder_email"), pick(
            names.PLACEHOLDER_EMAILS, uniform(seed, "placeholder_pick", key))).otherwise(F.col("email")))
    if "placeholder_phone" in defects:
        store_phone = F.element_at(F.create_map(*[p for k, v in names.STORE_PHONES.items() for p in (F.lit(k), F.lit(v))]),
                                   F.col("country"))
        value = F.when(F.col("channel") == "store", F.coalesce(store_phone, F.lit(names.PLACEHOLDER_PHONE))) \
            .otherwise(F.lit(names.PLACEHOLDER_PHONE))
        df = damage(df, "placeholder_phone", is_live & (uniform(seed, "placeholder_phone", key) < rate("placeholder_phone"))
                    & ~flag("phone_typo"), "phone", value)
    if "missing_key" in defects:
        # At most one identity defect per record: a renamed record keeps its key, so every
        # injected defect stays observable and countable in the files.
        renamed = flag("name_variant") if "name_variant" in defects else F.lit(False)
        for typo in TYPO_DEFECTS if entity == "customers" else ():
            renamed = renamed | flag(typo)
        hit = (uniform(seed, "missing_key", key) < rate("missing_key")) & ~renamed
        df = damage(df, "missing_key", hit, KEY_FIELD[entity], F.lit(None).cast("string"))
    if "unparseable_date" in defects:
        field = DATE_FIELD[entity]
        hit = F.col(field).isNotNull() & (uniform(seed, "bad_date", key) < rate("unparseable_date"))
        df = damage(df, "unparseable_date", hit, field, pick(GARBAGE_DATES, uniform(seed, "bad_date_pick", key)))
    if "negative_amount" in defects:
        df = damage(df, "negative_amount", uniform(seed, "negative", key) < rate("negative_amount"), "unit_price",
                    F.concat(F.lit("-"), F.col("unit_price")))
    if "unknown_currency" in defects:
        df = damage(df, "unknown_currency", uniform(seed, "currency", key) < rate("unknown_currency"), "currency",
                    pick(names.UNKNOWN_CURRENCIES, uniform(seed, "currency_pick", key)))
    duplicate = F.lit(False) if entity == "fx_rates" else uniform(seed, "duplicate", key) < rate("exact_duplicate")
    malformed = F.lit(False) if entity == "fx_rates" or not text_formats else \
        F.col("source").isin(*text_formats) & (uniform(seed, "malformed", key) < rate("malformed_line"))
    return df.withColumn("defect_exact_duplicate", duplicate).withColumn("defect_malformed_line", malformed)


def _name_variant(name: Column, draw: Column) -> Column:
    """Case, whitespace and full-width variants, as different clerks and keyboards produce them."""
    kind = F.floor(draw * 5).cast("int")
    return (F.when(kind == 0, F.upper(name))
            .when(kind == 1, F.lower(name))
            .when(kind == 2, F.concat(F.lit("  "), F.regexp_replace(name, " ", "  "), F.lit(" ")))
            .when(kind == 3, F.translate(name, HALF_WIDTH, FULL_WIDTH))
            # CJK names have no case: clerks insert a (full-width) space between surname and given name.
            .otherwise(F.regexp_replace(name, r"^(\p{IsHan})(\p{IsHan})", "$1\u3000$2")))


def source_columns(df: DataFrame, source: SourceConfig) -> list[Column]:
    """The source's own columns, in its order, from the canonical-named rendered columns."""
    return [(F.col(source.field_of_column(c)) if source.field_of_column(c) in df.columns else F.lit(None).cast("string"))
            .alias(c) for c in source.columns]


def source_values_sql(df: DataFrame, source: SourceConfig) -> list[str]:
    """:func:`source_columns`' values as Spark SQL, for the lines below.

    A record's text line is built as SQL text and parsed once: built from Column calls, the
    lines of the demo's sources took some 20,000 calls into the JVM per generation.
    """
    return [sql_identifier(source.field_of_column(c)) if source.field_of_column(c) in df.columns else "CAST(NULL AS STRING)"
            for c in source.columns]


def text_line_sql(source: SourceConfig, values: list[str]) -> str:
    """One record as a line of the source's text format: CSV fields quoted only when they hold
    the separator, a quote or a line break; or a JSON object of the source's columns."""
    if source.format != "csv":
        return f"to_json(named_struct({', '.join(f'{sql_string(c)}, {v}' for c, v in zip(source.columns, values))}))"
    sep = sql_string(source.options.get("sep", ","))

    def quoted(value: str) -> str:
        needs = " OR ".join(f"contains({value}, {lit})" for lit in (sep, sql_string('"'), sql_string("\n"), sql_string("\r")))
        return f"""CASE WHEN {value} IS NULL THEN '' WHEN {needs} THEN concat('"', regexp_replace({value}, '"', '""'), '"') ELSE {value} END"""
    return f"concat_ws({sep}, {', '.join(quoted(v) for v in values)})"


def csv_text(values: list[str], sep: str) -> str:
    """The same quoting as :func:`text_line_sql`, for a header written from Python."""
    def quoted(value: str) -> str:
        return f'"{value.replace(chr(34), chr(34) * 2)}"' if any(ch in value for ch in (sep, '"', "\n", "\r")) else value
    return sep.join(quoted(v) for v in values)


def broken_line_sql(source: SourceConfig, values: list[str], line: str) -> str:
    """A malformed copy of a record: half its CSV fields, or JSON cut off mid-object."""
    if source.format == "csv":
        half = ", ".join(f"coalesce({v}, '')" for v in values[: max(1, len(values) // 2)])
        return f"concat_ws({sql_string(source.options.get('sep', ','))}, {half})"
    # 0.6D, a double: 0.6 alone is a decimal, which cuts some lengths one character differently.
    return f"substring({line}, 1, greatest(2, CAST(length({line}) * 0.6D AS INT)))"


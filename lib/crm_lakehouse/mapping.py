"""A source's mapping as Spark columns: each canonical field from a column, a constant, a value
map or a Spark SQL expression over the source's (string) columns.

Expressions are checked against the source's columns before any row is read
(:func:`check_expressions`: syntax, unknown columns and functions, each one line naming the file,
the key and the fix). At run time an expression may still fail on some rows — a cast of
``'n/a'`` under Spark's ANSI mode — and must not fail the batch: each expression is evaluated
inside ``try_to_binary``, whose error handling covers everything evaluated beneath it, so a row
whose expression raised gets ``null`` there and its failure recorded, while every other row keeps
Spark's strict semantics. The failures become the row's quarantine reason (``field: expression``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, StringType, StructField, StructType

from crm_lakehouse.config import FieldSpec, Settings, SourceConfig
from crm_lakehouse.errors import ConfigError


@dataclass(frozen=True)
class MappedField:
    """A canonical field's value: ``text`` for delivered text (parsed later with the source's
    conventions), or ``typed`` for an expression that returns a typed value; ``failed`` is true
    on rows where the expression raised."""

    text: Column | None
    typed: Column | None
    data_type: DataType
    failed: Column | None


def sql_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _value_map(text: Column, spec: FieldSpec) -> Column:
    if not spec.values and not spec.has_default:
        return text
    folded = F.lower(F.trim(text))
    mapped = text if not spec.has_default else (F.lit(spec.default) if spec.default is not None
                                                  else F.lit(None).cast("string"))
    if spec.values:
        pairs = ", ".join(f"{sql_quote(k)}, {sql_quote(v) if v is not None else 'CAST(NULL AS STRING)'}"
                          for k, v in dict(spec.values).items())
        known = F.expr(f"map({pairs})")
        mapped = F.when(F.map_contains_key(known, folded), F.element_at(known, folded)).otherwise(mapped)
    # A missing value stays missing, whatever the map's default says.
    return F.when(text.isNull() | (F.trim(text) == ""), F.lit(None).cast("string")).otherwise(mapped)


def _guarded(expression: str, data_type: DataType) -> tuple[Column, Column]:
    """(value, failed) of an expression evaluated so that a row's runtime error becomes a null
    value with ``failed`` true instead of an exception (see the module docstring)."""
    probe = F.expr(f"try_to_binary(to_json(named_struct('v', ({expression}))), 'utf-8')")
    schema = StructType([StructField("v", data_type)])
    value = F.from_json(F.decode(probe, "utf-8"), schema).getField("v")
    return value, probe.isNull()


def expression_type(df: DataFrame, expression: str) -> DataType:
    """The result type of an expression over ``df`` (analysis only, no Spark job)."""
    return df.select(F.expr(expression).alias("v")).schema["v"].dataType


def mapped_field(df: DataFrame, spec: FieldSpec) -> MappedField:
    """The column for one mapping entry over bronze rows ``df`` (generated values excluded)."""
    if spec.expr is not None:
        data_type = expression_type(df, spec.expr)
        value, failed = _guarded(spec.expr, data_type)
        if isinstance(data_type, StringType) or spec.values or spec.has_default:
            text = value if isinstance(data_type, StringType) else value.cast("string")
            return MappedField(text=_value_map(text, spec), typed=None, data_type=StringType(), failed=failed)
        return MappedField(text=None, typed=value, data_type=data_type, failed=failed)
    if spec.column is not None:
        return MappedField(text=_value_map(F.col(f"`{spec.column}`").cast("string"), spec), typed=None,
                           data_type=StringType(), failed=None)
    return MappedField(text=F.lit(spec.value).cast("string"), typed=None, data_type=StringType(), failed=None)


def failure_labels(failures: dict[str, tuple[Column, FieldSpec]]) -> Column:
    """``array<string>`` of ``field: expression`` for every expression that failed on the row."""
    if not failures:
        return F.array().cast("array<string>")
    labels = [F.when(failed, F.lit(f"expression_failed({name}: {spec.expr})")) for name, (failed, spec) in failures.items()]
    return F.filter(F.array(*labels), lambda label: label.isNotNull())


def source_columns_frame(spark: SparkSession, source: SourceConfig) -> DataFrame:
    """An empty DataFrame with the source's columns as bronze holds them (strings, plus lineage)."""
    fields = [StructField(c, StringType()) for c in source.columns] + [
        StructField(c, StringType()) for c in ("_source", "_region", "_channel", "_source_file")]
    return spark.createDataFrame([], StructType(fields))


def check_expressions(spark: SparkSession, settings: Settings) -> None:
    """Analyse every mapping and attribute expression against its source's columns; the first
    that Spark cannot resolve or parse raises ConfigError naming the file and key."""
    from pyspark.errors import AnalysisException, ParseException

    for source in settings.sources:
        specs = [*source.mapping.values(), *source.attributes.values()]
        expressions = [s for s in specs if s.expr is not None]
        if not expressions:
            continue
        frame = source_columns_frame(spark, source)
        for spec in expressions:
            try:
                expression_type(frame, spec.expr)
            except (AnalysisException, ParseException) as exc:
                raise ConfigError(f"expression {spec.expr!r} does not work: {_first_line(exc)}", where=spec.where,
                                  fix=f"write Spark SQL over the source's columns ({', '.join(source.columns)}); "
                                      "quote names with spaces in backticks") from None


def _first_line(exc: Exception) -> str:
    message = str(getattr(exc, "getMessage", lambda: str(exc))() or exc)
    line = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    return line[:240]

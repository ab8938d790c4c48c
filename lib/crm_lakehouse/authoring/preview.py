"""``crm-lakehouse source preview NAME``: a configured source's first rows as silver would see them.

Reads the first rows of the source's landing files exactly as bronze reads them, maps them to
the canonical fields with the source's conventions, and runs its entity's quality rules — with
the lakehouse's FX rates and identity map when silver exists — so each row shows its fate:
accepted, a duplicate, or quarantined with the rules it broke. Nothing is written.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from crm_lakehouse import storage
from crm_lakehouse.bronze.ingest import FILE_ROW, add_lineage, landing_path, read_source_files
from crm_lakehouse.config import Settings, SourceConfig, join_path
from crm_lakehouse.delta_writes import is_delta_table
from crm_lakehouse.errors import SourceError
from crm_lakehouse.mapping import check_expressions
from crm_lakehouse.silver import contracts
from crm_lakehouse.silver.customers import CUSTOMER_RULES, flag_placeholders
from crm_lakehouse.silver.interactions import INTERACTION_RULES
from crm_lakehouse.silver.orders import ORDER_LINE_RULES, with_customer_id, with_reporting_amounts
from crm_lakehouse.silver.quality import triage, with_actions
from crm_lakehouse.silver.reference import FX_RATE_RULES, PRODUCT_RULES
from crm_lakehouse.silver.staging import stage

RULES = {"customers": CUSTOMER_RULES, "orders": ORDER_LINE_RULES, "interactions": INTERACTION_RULES,
         "products": PRODUCT_RULES, "fx_rates": FX_RATE_RULES}
KEYS = {"customers": ["_source", "source_customer_id", "sequence_number"], "orders": ["_source", "order_id", "line_number"],
        "interactions": ["interaction_id"], "products": ["product_id"], "fx_rates": ["rate_date", "currency"]}


def _silver(spark: SparkSession, settings: Settings, contract) -> DataFrame:
    path = contracts.table_path(settings, contract)
    if is_delta_table(spark, path):
        return spark.read.format("delta").load(path)
    return spark.createDataFrame([], contract.schema)


def preview(spark: SparkSession, settings: Settings, name: str, *, rows: int = 20) -> list[dict]:
    """The first ``rows`` rows of the source: its mapped canonical fields, fate and broken rules."""
    source = settings.source(name)
    check_expressions(spark, settings)
    folder = landing_path(source, settings.landing)
    files = [join_path(folder, f) for f in storage.list_files(spark, folder) if not f.startswith((".", "_"))]
    if not files:
        raise SourceError(f"no files for source '{name}' yet", where=folder,
                          fix=f"put an export there, or correct path: in {source.defined_in}")
    bronze = add_lineage(read_source_files(spark, source, files[:5]), source).limit(rows) \
        .withColumn(FILE_ROW, F.monotonically_increasing_id()).withColumn("_batch_id", F.lit(-1).cast("long"))
    staged = _with_lookups(spark, settings, source, stage(bronze, source))
    judged = triage(staged, with_actions(RULES[source.entity], settings.silver.rule_actions),
                    table=f"preview of {name}", key=KEYS[source.entity], newest_first=[F.col("_file_row")])
    fields = [f for f in source.mapping if f in judged.columns] + (["operation"] if source.entity == "customers" else [])
    if source.entity == "orders":
        fields += ["currency", "status", "fx_rate", "customer_id"]
    shown = judged.orderBy("_file_row").select(*dict.fromkeys(fields), "fate", F.array_join("broken_rules", ", ").alias(
        "rules"), *[F.col("attributes")[a].alias(f"attributes.{a}") for a in source.attributes]).collect()
    return [{k: ("" if v is None else v) for k, v in row.asDict().items()} for row in shown]


def _with_lookups(spark: SparkSession, settings: Settings, source: SourceConfig, staged: DataFrame) -> DataFrame:
    """What the entity's rules look at beyond the row: FX rates and known customers for orders
    and contacts, placeholders for customers (as silver's batch adds them)."""
    identity = settings.silver.identity
    if source.entity == "customers":
        return flag_placeholders(staged, blocked_emails=identity.blocked_emails, blocked_phones=identity.blocked_phones) \
            .withColumn("derives_changes", F.lit(source.mode != "cdc")).withColumn("is_stale_export", F.lit(False))
    known = _silver(spark, settings, contracts.CUSTOMER_IDENTITY_MAP)
    if source.entity == "orders":
        priced = with_reporting_amounts(staged, _silver(spark, settings, contracts.FX_RATES), settings.reporting_currency)
        lines = priced.withColumn("customer_source", F.lit(source.customer_source).cast("string"))
        if source.inline_customers:  # the lines bring their own customers: each is known
            return lines.withColumn("customer_id", F.when(F.col("source_customer_id").isNotNull(), F.lit("(inline)")))
        return with_customer_id(lines, known)
    if source.entity == "interactions":
        return with_customer_id(staged.withColumn("customer_source", F.col("customer_system")), known)
    return staged

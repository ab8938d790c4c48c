"""The gold job on the shared test data: reconciled with silver, incremental = full, cost follows change."""

from __future__ import annotations

from chispa import assert_df_equality
from pyspark.sql import functions as F

from crm_lakehouse.gold.contracts import CONTRACTS, table_path
from crm_lakehouse.silver import contracts as silver


def gold(spark, settings, table: str):
    return spark.read.format("delta").load(table_path(settings, CONTRACTS[table]))


def silver_table(spark, settings, table: str):
    return spark.read.format("delta").load(silver.table_path(settings, silver.CONTRACTS[table]))


def test_gold_reconciles_exactly_with_silver(spark, one_shot):
    lines = silver_table(spark, one_shot, "order_lines")
    facts = gold(spark, one_shot, "fact_sales")
    assert facts.count() == lines.count()
    assert facts.agg(F.sum("net_amount_usd")).first()[0] == lines.agg(F.sum("net_amount_usd")).first()[0]
    completed = lines.where("status = 'completed'")
    daily = gold(spark, one_shot, "sales_daily")
    assert daily.agg(F.sum("revenue_usd")).first()[0] == completed.agg(F.sum("net_amount_usd")).first()[0]
    assert daily.agg(F.sum("units")).first()[0] == completed.agg(F.sum("quantity")).first()[0]
    assert daily.agg(F.sum("orders")).first()[0] == completed.select(
        "source", "order_id", "order_local_date", "region", "channel", "product_id").join(
        silver_table(spark, one_shot, "products").select("product_id", "category"), "product_id", "left") \
        .select("source", "order_id", "order_local_date", "region", "channel", "category").distinct().count()
    c360 = gold(spark, one_shot, "customer_360")
    customers = silver_table(spark, one_shot, "customers")
    assert c360.count() == customers.count()
    assert c360.join(customers, "customer_id", "left_anti").count() == 0
    assert c360.agg(F.sum("lifetime_value_usd")).first()[0] == \
        completed.where("customer_id IS NOT NULL").join(customers, "customer_id", "left_semi") \
        .agg(F.sum("net_amount_usd")).first()[0]
    assert c360.agg(F.sum("orders_count")).first()[0] == completed.join(customers, "customer_id", "left_semi") \
        .select("source", "order_id").distinct().count()


def test_incremental_day_by_day_with_a_crash_equals_a_full_build(spark, day_by_day, one_shot):
    [day1] = day_by_day.gold_day1
    assert day1.resumed and day1.writes["fact_sales"].skipped and not day1.writes["customer_360"].skipped
    for table in ("customer_360", "fact_sales", "sales_daily"):
        columns = [c for c in CONTRACTS[table].columns if c != "_batch_id"]
        assert_df_equality(gold(spark, day_by_day.settings, table).select(*columns),
                           gold(spark, one_shot, table).select(*columns), ignore_row_order=True, ignore_nullable=True)


def test_a_daily_batch_rewrites_only_the_rows_it_changes(spark, day_by_day):
    [day0] = day_by_day.gold_day0
    [day1] = day_by_day.gold_day1
    # The resumed batch skipped fact_sales (committed before the crash): read that commit's metrics.
    fact_commit = spark.sql(f"DESCRIBE HISTORY delta.`{table_path(day_by_day.settings, CONTRACTS['fact_sales'])}`") \
        .where(F.col("version") == day0.writes["fact_sales"].table_version + 1).first()
    customers = gold(spark, day_by_day.settings, "customer_360").count()
    merge = day1.writes["customer_360"].metrics
    changed = sum(int(merge[m]) for m in ("numTargetRowsInserted", "numTargetRowsUpdated", "numTargetRowsDeleted"))
    assert 0 < changed <= day1.affected["customers"] < 0.25 * customers
    # Deletion vectors: the untouched rows of the files holding changed rows are not copied.
    for table in ("customer_360", "sales_daily"):
        assert int(day1.writes[table].metrics["numTargetRowsCopied"]) == 0, table
    lines = fact_commit["operationMetrics"]
    assert int(lines["numTargetRowsCopied"]) == 0
    assert 0 < int(lines["numTargetRowsInserted"]) + int(lines["numTargetRowsUpdated"]) <= day1.affected["lines"]
    assert day1.affected["lines"] < 0.1 * gold(spark, day_by_day.settings, "fact_sales").count()


def test_a_rerun_with_nothing_new_in_silver_runs_no_gold_batch(spark, day_by_day):
    from crm_lakehouse.gold.build import build_gold

    assert build_gold(spark, day_by_day.settings) == []

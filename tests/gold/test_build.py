"""The gold job on the shared test data: reconciled with silver, incremental = full, cost follows change."""

from __future__ import annotations

import shutil

from chispa import assert_df_equality
from pyspark.sql import functions as F

from crm_lakehouse.gold.contracts import CONTRACTS, table_path
from crm_lakehouse.silver import contracts as silver
from tests.conftest import comparable


def gold(spark, settings, table: str):
    return spark.read.format("delta").load(table_path(settings, CONTRACTS[table]))


def silver_table(spark, settings, table: str):
    return spark.read.format("delta").load(silver.table_path(settings, silver.CONTRACTS[table]))


def test_gold_reconciles_exactly_with_silver(spark, one_shot):
    lines = silver_table(spark, one_shot, "order_lines")
    customers = silver_table(spark, one_shot, "customers")
    facts = gold(spark, one_shot, "fact_sales")
    assert facts.count() == lines.count()
    assert facts.agg(F.sum("net_amount_reporting")).first()[0] == lines.agg(F.sum("net_amount_reporting")).first()[0]
    # Completed lines are sales; returned ones were sold and came back (the generator makes no
    # reversal lines); cancelled ones were never sales.
    completed, returned = lines.where("status = 'completed'"), lines.where("status = 'returned'")
    total = lambda df, column: df.agg(F.sum(column)).first()[0]  # noqa: E731
    daily = gold(spark, one_shot, "sales_daily")
    assert total(daily, "net_sales_reporting") == total(completed, "net_amount_reporting")
    assert total(daily, "returns_reporting") == total(returned, "net_amount_reporting") > 0
    assert total(daily, "gross_sales_reporting") == total(completed, "net_amount_reporting") + \
        total(returned, "net_amount_reporting")
    assert total(daily, "units") == total(completed, "quantity")
    # A line's country is its own, else its customer's (the generator's lines have none of their own).
    country = customers.select("customer_id", F.col("country").alias("customer_country"))
    assert total(daily, "orders") == completed.join(country, "customer_id", "left").select(
        "source", "order_id", "order_local_date", "region",
        F.coalesce("country", "customer_country", F.lit("ZZ")).alias("sale_country"), "channel", "product_id").join(silver_table(spark, one_shot, "products").select("product_id", "category"), "product_id",
                           "left").drop("product_id").distinct().count()
    # The months: the days' sums, and orders counted once per month from silver's lines.
    monthly = gold(spark, one_shot, "sales_monthly")
    for column in ("gross_sales_reporting", "returns_reporting", "net_sales_reporting", "units"):
        assert total(monthly, column) == total(daily, column), column
    assert total(monthly, "orders") == completed.join(country, "customer_id", "left").select(
        "source", "order_id", F.trunc("order_local_date", "month"), "region",
        F.coalesce("country", "customer_country", F.lit("ZZ")), "channel").distinct().count()
    c360 = gold(spark, one_shot, "customer_360")
    active = c360.where("customer_status = 'active'")
    assert active.count() == customers.count()
    assert active.join(customers, "customer_id", "left_anti").count() == 0
    # Every sale names a customer_360 row: live, deleted since (no PII) or the unknown member.
    assert facts.join(c360, "customer_id", "left_anti").count() == 0
    assert c360.where("customer_status = 'deleted'").where("full_name IS NOT NULL OR country IS NOT NULL").count() == 0
    assert total(c360, "lifetime_value_reporting") == total(completed, "net_amount_reporting")
    assert total(active, "lifetime_value_reporting") == \
        total(completed.join(customers, "customer_id", "left_semi"), "net_amount_reporting")
    assert total(active, "orders_count") == completed.join(customers, "customer_id", "left_semi") \
        .select("source", "order_id").distinct().count()


def test_incremental_day_by_day_with_a_crash_equals_a_full_build(spark, day_by_day, one_shot):
    [day1] = day_by_day.gold_day1
    assert day1.resumed and day1.writes["fact_sales"].skipped and not day1.writes["customer_360"].skipped
    for table in ("customer_360", "fact_sales", "sales_daily", "sales_monthly"):
        columns = [c for c in CONTRACTS[table].columns if c != "_batch_id"]
        assert_df_equality(comparable(gold(spark, day_by_day.settings, table).select(*columns)),
                           comparable(gold(spark, one_shot, table).select(*columns)), ignore_row_order=True,
                           ignore_nullable=True)


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
    for table in ("customer_360", "sales_daily", "sales_monthly"):
        assert int(day1.writes[table].metrics["numTargetRowsCopied"]) == 0, table
    lines = fact_commit["operationMetrics"]
    assert int(lines["numTargetRowsCopied"]) == 0
    assert 0 < int(lines["numTargetRowsInserted"]) + int(lines["numTargetRowsUpdated"]) <= day1.affected["lines"]
    assert day1.affected["lines"] < 0.1 * gold(spark, day_by_day.settings, "fact_sales").count()


def test_a_lakehouse_made_before_sales_monthly_gets_it_whole_at_the_next_gold_run(spark, one_shot, tmp_path):
    from crm_lakehouse.gold.build import build_gold
    from tests.conftest import settings_for

    root = tmp_path / "lakehouse"
    shutil.copytree(one_shot.root, root)
    shutil.rmtree(root / "gold" / "sales_monthly")
    settings = settings_for(one_shot, root)

    assert build_gold(spark, settings) == []  # silver has not changed: no batch, the months filled all the same
    columns = [c for c in CONTRACTS["sales_monthly"].columns if c != "_batch_id"]
    assert_df_equality(gold(spark, settings, "sales_monthly").select(*columns),
                       gold(spark, one_shot, "sales_monthly").select(*columns), ignore_row_order=True)


def test_a_batch_with_only_new_interactions_runs_no_sales_step_and_updates_their_customer(spark, one_shot, tmp_path,
                                                                                           caplog):
    import logging

    from crm_lakehouse.delta_writes import table_version
    from crm_lakehouse.gold.build import build_gold
    from tests.conftest import settings_for

    root = tmp_path / "lakehouse"
    shutil.copytree(one_shot.root, root)
    settings = settings_for(one_shot, root)
    contacts = silver_table(spark, settings, "interactions")
    as_of = gold(spark, settings, "run_log").agg(F.max("as_of_date")).first()[0]
    # A call on the lakehouse's as-of date (so no score bound is crossed by time) by a known customer.
    call = contacts.where(F.col("customer_id").isNotNull()).orderBy("interaction_id").limit(1) \
        .withColumn("interaction_id", F.lit("test-call-1")) \
        .withColumn("occurred_at", F.to_timestamp(F.lit(f"{as_of} 12:00:00"))) \
        .withColumn("occurred_local_date", F.lit(as_of))
    customer = call.first()["customer_id"]
    calls_before = gold(spark, settings, "customer_360").where(F.col("customer_id") == customer) \
        .first()["interactions_90d"]
    sales_tables = ("fact_sales", "sales_daily", "sales_monthly")
    versions = {t: table_version(spark, table_path(settings, CONTRACTS[t])) for t in sales_tables}
    call.write.format("delta").mode("append").save(silver.table_path(settings, silver.INTERACTIONS))

    with caplog.at_level(logging.INFO, logger="crm_lakehouse"):
        [batch] = build_gold(spark, settings)
    assert f"gold batch {batch.batch_id}: nothing new for sales" in caplog.messages
    assert not any("touched order lines" in message for message in caplog.messages)  # no fact was read
    assert batch.affected == {"customers": 1, "lines": 0, "groups": 0}
    assert sorted(batch.writes) == ["customer_360", "run_log"]
    assert {t: table_version(spark, table_path(settings, CONTRACTS[t])) for t in sales_tables} == versions
    assert gold(spark, settings, "customer_360").where(F.col("customer_id") == customer) \
        .first()["interactions_90d"] == calls_before + 1


def test_a_rerun_with_nothing_new_in_silver_runs_no_gold_batch(spark, day_by_day):
    from crm_lakehouse.gold.build import build_gold

    assert build_gold(spark, day_by_day.settings) == []


def test_a_lakehouse_without_orders_or_contacts_is_as_of_its_latest_customer_change(spark):
    import datetime as dt

    from crm_lakehouse.gold.build import _as_of_date

    lines = spark.createDataFrame([], "order_local_date date")
    contacts = spark.createDataFrame([], "occurred_local_date date")
    customers = spark.createDataFrame([(dt.datetime(2026, 11, 30, 5, 0),), (dt.datetime(2026, 11, 2, 9, 0),)],
                                      "updated_at timestamp")
    assert _as_of_date(lines, contacts, customers) == "2026-11-30"
    orders = spark.createDataFrame([(dt.date(2025, 5, 1),)], "order_local_date date")
    assert _as_of_date(orders, contacts, customers) == "2025-05-01"   # orders decide when there are any


def test_gold_columns_carry_their_contracts_comments_for_every_reader(spark, one_shot):
    commented = [c for c in CONTRACTS.values() if c.comments]
    assert {c.name for c in commented} >= {"customer_360", "fact_sales", "sales_daily"}
    for contract in commented:
        path = table_path(one_shot, contract)
        described = {r["col_name"]: r["comment"] for r in spark.sql(f"DESCRIBE TABLE delta.`{path}`").collect()}
        assert {c: described[c] for c in contract.comments} == contract.comments, contract.name
        # A reader without Spark (delta-rs) sees them in the table's schema too.
        from deltalake import DeltaTable as RustDeltaTable
        fields = {f.name: f.metadata.get("comment") for f in RustDeltaTable(path).schema().fields}
        assert {c: fields[c] for c in contract.comments} == contract.comments, contract.name


def test_a_customer_360_made_before_it_carried_the_profile_gets_it_from_silver_in_one_commit(spark, tmp_path):
    """The upgrade adds and fills the contact columns in one MERGE: active customers get silver's
    values, a deleted one none; run again, it commits nothing."""
    from datetime import date

    from delta.tables import DeltaTable
    from pyspark.sql.types import StructType

    from crm_lakehouse.gold.build import _fill_customer_profiles
    from crm_lakehouse.gold.contracts import CUSTOMER_360, PROFILE_FROM_SILVER
    from tests.sql.test_masking import contract_rows

    old_schema = StructType([f for f in CUSTOMER_360.schema.fields if f.name not in PROFILE_FROM_SILVER])
    gold_path, silver_path = str(tmp_path / "customer_360"), str(tmp_path / "customers")
    rows = contract_rows(spark, CUSTOMER_360, [dict(customer_id="c1", customer_status="active", full_name="Ana"),
                                               dict(customer_id="c2", customer_status="deleted")])
    rows.select(*old_schema.fieldNames()).write.format("delta").save(gold_path)
    contract_rows(spark, silver.CUSTOMERS, [
        dict(customer_id="c1", full_name="Ana", email="ana@example.com", phone="+351912345678", gender="F",
             birth_date=date(1987, 4, 2), city="Lisbon", address="Rua A 1"),
        dict(customer_id="c2", full_name="Bo", email="bo@example.com", city="Porto"),   # silver ahead of gold
    ]).write.format("delta").save(silver_path)

    _fill_customer_profiles(spark, gold_path, silver_path)
    table = DeltaTable.forPath(spark, gold_path)
    filled = {r.customer_id: tuple(r[c] for c in PROFILE_FROM_SILVER) for r in table.toDF().collect()}
    assert filled == {"c1": ("ana@example.com", "+351912345678", date(1987, 4, 2), "F", "Lisbon", "Rua A 1"),
                      "c2": (None,) * 6}
    assert table.history().count() == 2   # created, then one MERGE that added and filled the columns
    _fill_customer_profiles(spark, gold_path, silver_path)
    assert table.history().count() == 2

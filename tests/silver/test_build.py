"""The silver job end to end on the shared test data: incremental = one-shot, crash-safe, reconciled,
identity resolved against the generator's ground truth, every injected defect accounted for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from crm_lakehouse.batches import table_version
from crm_lakehouse.bronze.ingest import ingest_all
from crm_lakehouse.config import Settings
from crm_lakehouse.silver import build as silver_build
from crm_lakehouse.silver.contracts import CONTRACTS, table_path
from crm_lakehouse.silver.summary import identity_quality
from tests.conftest import comparable, copy_landing, settings_for

# Columns that legitimately differ between two runs over the same data: which batch wrote a row,
# from which lakehouse folder it was read.
RUN_COLUMNS = {"_batch_id", "_source_file"}
COMPARED_TABLES = ["customers", "customers_history", "customer_identity_map", "customer_id_redirects", "identity_links",
                   "identity_review", "orders", "order_lines", "interactions", "products", "fx_rates"]


def read(spark, settings: Settings, table: str):
    return spark.read.format("delta").load(table_path(settings, CONTRACTS[table]))


def test_day_by_day_with_a_crash_gives_the_same_silver_tables_as_one_shot(spark, day_by_day, one_shot):
    settings = day_by_day.settings
    for table in COMPARED_TABLES:
        columns = [c for c in CONTRACTS[table].columns if c not in RUN_COLUMNS]
        assert_df_equality(comparable(read(spark, settings, table).select(*columns)),
                           comparable(read(spark, one_shot, table).select(*columns)),
                           ignore_row_order=True, ignore_nullable=True)
    quarantined = ["target_table", "source", "record_key", "broken_rules", "raw_record"]
    assert_df_equality(read(spark, settings, "quarantine").select(*quarantined),
                       read(spark, one_shot, "quarantine").select(*quarantined), ignore_row_order=True)


def test_the_rerun_resumes_the_crashed_batch_and_skips_the_tables_it_had_committed(day_by_day):
    first, resumed, committed_before_crash = day_by_day.silver_day0, day_by_day.silver_day1, day_by_day.committed_before_crash
    assert [b.batch_id for b in first] == [0]
    assert [(b.batch_id, b.resumed) for b in resumed] == [(1, True)]
    writes = resumed[0].writes
    skipped = {name for name, w in writes.items() if w.skipped}
    assert {Path(p).name for p in committed_before_crash} == skipped
    assert len(skipped) == 4 and all(not writes[n].skipped for n in writes if n not in skipped)


def test_the_daily_batch_scores_only_the_pairs_of_the_records_it_touched(spark, day_by_day):
    [day0], [day1] = day_by_day.silver_day0, day_by_day.silver_day1
    live = read(spark, day_by_day.settings, "customers_history").where("is_current").count()
    # Day 0 brings a new model: every live record is scored. Day 1 rescores the records it touched.
    assert 0 < day1.identity["rescored_records"] < day0.identity["rescored_records"] / 2 < live
    # A bounded number of candidate pairs per rescored record, not the graph's.
    assert day1.identity["pairs_scored"] <= 10 * day1.identity["rescored_records"]


def test_a_rerun_with_nothing_new_in_bronze_writes_nothing(spark, day_by_day):
    settings = day_by_day.settings
    before = {name: table_version(spark, table_path(settings, c)) for name, c in CONTRACTS.items()}
    assert silver_build.build_silver(spark, settings) == []
    assert {name: table_version(spark, table_path(settings, c)) for name, c in CONTRACTS.items()} == before


def test_every_batch_reconciles_with_bronze_and_with_the_tables(spark, day_by_day):
    settings = day_by_day.settings
    log = read(spark, settings, "run_log")
    assert log.where("rows_in <> accepted + quarantined + duplicates_removed").count() == 0
    assert sorted(log.select("batch_id").distinct().toPandas()["batch_id"]) == [0, 1]
    rows_in = {r["source"]: r["rows_in"] for r in log.groupBy("source").agg(F.sum("rows_in").alias("rows_in")).collect()}
    bronze = {s.name: spark.read.format("delta").load(settings.table_path("bronze", s.name)).count() for s in settings.sources}
    assert rows_in == bronze
    accepted = {r["target_table"]: r["accepted"] for r in
                log.groupBy("target_table").agg(F.sum("accepted").alias("accepted")).collect()}
    # Lines, interactions and CDC events are never delivered twice under one key in this data.
    for table in ("order_lines", "interactions", "customers_history"):
        assert accepted[f"silver.{table}"] == read(spark, settings, table).count(), table
    assert log.agg(F.sum("quarantined")).first()[0] == read(spark, settings, "quarantine").count()


def test_identity_resolution_matches_the_ground_truth(spark, one_shot):
    quality = identity_quality(spark, one_shot)
    assert quality["records_with_truth"] == quality["records"]
    assert quality["precision"] >= 0.98 and quality["recall"] >= 0.98, quality
    truth = spark.read.parquet(str(Path(one_shot.landing) / "_ground_truth" / "customer_records"))
    resolved = read(spark, one_shot, "customer_identity_map").join(truth, ["source", "source_customer_id"])
    largest = lambda key: resolved.groupBy(key).count().agg(F.max("count")).first()[0]  # noqa: E731
    assert largest("customer_id") <= largest("person_id")


def _manifest_totals(settings: Settings, entity_of: dict[str, str]) -> dict[tuple[str, str], int]:
    totals: dict[tuple[str, str], int] = {}
    for file in sorted(Path(settings.landing, "_manifest").glob("day=*/manifest.json")):
        for source, counts in json.loads(file.read_text())["sources"].items():
            for defect, n in counts["defects"].items():
                key = (entity_of[source], defect)
                totals[key] = totals.get(key, 0) + n
    return totals


def test_each_injected_defect_is_repaired_deduplicated_or_quarantined(spark, one_shot):
    settings = one_shot
    expected = _manifest_totals(settings, {s.name: s.entity for s in settings.sources})
    quarantine = read(spark, settings, "quarantine")
    table_of = {"customers": "silver.customers_history", "orders": "silver.order_lines",
                "interactions": "silver.interactions"}

    def quarantined(entity: str, rule: str) -> int:
        # A record and its exact copy (or replay) are one defect: count distinct delivered records.
        return quarantine.where((F.col("target_table") == table_of[entity]) & F.array_contains("broken_rules", rule)
                                & ~F.array_contains("broken_rules", "parseable_record")) \
            .select("source", "raw_record").distinct().count()

    malformed = quarantine.where(F.array_contains("broken_rules", "parseable_record")).count()
    assert malformed == sum(n for (_, d), n in expected.items() if d == "malformed_line")
    assert quarantined("customers", "has_source_customer_id") == expected[("customers", "missing_key")]
    assert quarantined("orders", "has_order_id") == expected[("orders", "missing_key")]
    assert quarantined("interactions", "has_interaction_id") == expected[("interactions", "missing_key")]
    assert quarantined("orders", "parseable_ordered_at") == expected[("orders", "unparseable_date")]
    assert quarantined("interactions", "parseable_occurred_at") == expected[("interactions", "unparseable_date")]
    assert quarantined("orders", "non_negative_unit_price") == expected[("orders", "negative_amount")]
    assert quarantined("orders", "known_currency") == expected[("orders", "unknown_currency")]

    log = read(spark, settings, "run_log")
    warned = {r["rule"]: r["n"] for r in log.where("target_table = 'silver.customers_history'")
              .select(F.explode("warnings").alias("rule", "n")).groupBy("rule").agg(F.sum("n").alias("n")).collect()}
    # A warned defect is kept, unless the record broke a quarantine rule too: then the quarantine
    # lists the warning among its broken rules. Either way it is accounted for.
    for rule, defect in [("valid_email", "invalid_email"), ("placeholder_email", "placeholder_email"),
                         ("placeholder_phone", "placeholder_phone"), ("parseable_signup_at", "unparseable_date")]:
        assert warned.get(rule, 0) + quarantined("customers", rule) == expected[("customers", defect)], rule
    # A copy (exact duplicate line, replayed event) is removed as a duplicate, or, when its
    # original is quarantined, quarantined beside it.
    duplicates = {r["target_table"]: r["n"] for r in log.groupBy("target_table")
                  .agg(F.sum("duplicates_removed").alias("n")).collect()}

    def quarantined_copies(entity: str) -> int:
        rows = quarantine.where(F.col("target_table") == table_of[entity])
        return rows.count() - rows.select("source", "raw_record").distinct().count()

    assert duplicates["silver.customers_history"] + quarantined_copies("customers") == \
        expected[("customers", "exact_duplicate")] + expected[("customers", "replayed_event")]
    assert duplicates["silver.order_lines"] + quarantined_copies("orders") == expected[("orders", "exact_duplicate")]
    assert duplicates["silver.interactions"] + quarantined_copies("interactions") == \
        expected[("interactions", "exact_duplicate")]

    # Repaired: every name variant folds to one spelling per person, every phone is E.164.
    history = read(spark, settings, "customers_history")
    truth = spark.read.parquet(str(Path(settings.landing) / "_ground_truth" / "customer_records"))
    spellings = history.where("full_name IS NOT NULL").join(truth, ["source", "source_customer_id"]) \
        .groupBy("person_id").agg(F.countDistinct(F.lower("full_name")).alias("n"))
    assert spellings.where("n > 1").count() == 0
    assert history.where("phone IS NOT NULL AND NOT phone RLIKE '^\\\\+[1-9][0-9]{6,14}$'").count() == 0
    assert expected[("customers", "name_variant")] > 0 and expected[("customers", "mixed_phone_format")] > 0


def test_amounts_are_kept_in_the_original_currency_and_in_the_reporting_one_at_the_order_date_rate(spark, one_shot):
    lines = read(spark, one_shot, "order_lines")
    fx = read(spark, one_shot, "fx_rates")
    assert lines.where("net_amount_reporting IS NULL").count() == 0
    foreign = lines.where("currency <> 'USD'")
    checked = foreign.join(fx.withColumnRenamed("rate", "fx_table_rate"), ["currency"]) \
        .where(F.col("rate_date") == F.col("fx_rate_date"))
    assert foreign.count() > 0 and checked.count() == foreign.count()
    assert checked.where("fx_rate <> fx_table_rate").count() == 0
    assert checked.where(F.abs(F.col("net_amount_reporting") - F.round(F.col("net_amount") * F.col("fx_rate"), 2))
                         > 0.01).count() == 0
    # The order date's own rate wherever it has arrived; the latest earlier one only past the last rate.
    last_rate = fx.agg(F.max("rate_date")).first()[0]
    late = foreign.where("fx_rate_date <> order_local_date")
    assert late.where(F.col("order_local_date") <= F.lit(last_rate)).count() == 0
    assert late.where(F.col("fx_rate_date") != F.lit(last_rate)).count() == 0
    # Lines already in the reporting currency need no rate.
    usd = lines.where("currency = 'USD'")
    assert usd.count() > 0 and usd.where("net_amount_reporting <> net_amount OR fx_rate <> 1 "
                                         "OR fx_rate_date IS NOT NULL").count() == 0


def test_a_fail_rule_stops_the_batch_naming_rule_table_and_a_key_with_nothing_written(spark, base_settings, generated,
                                                                                   tmp_path):
    import dataclasses

    from crm_lakehouse.config import SilverSettings
    from crm_lakehouse.silver.quality import QualityError

    wanted = {"global_treasury_fx_rates", "us_store_customers", "us_store_orders"}
    settings = settings_for(base_settings, tmp_path)
    settings = dataclasses.replace(
        settings, sources=tuple(s for s in settings.sources if s.name in wanted),
        silver=SilverSettings(identity=settings.silver.identity, rule_actions={"non_negative_unit_price": "fail"}))
    copy_landing(generated, tmp_path / "landing", days=[0])
    ingest_all(spark, settings)
    with pytest.raises(QualityError) as failure:
        silver_build.build_silver(spark, settings)
    message = failure.value.line()
    assert "rule 'non_negative_unit_price' failed on silver.order_lines (e.g. order_id=" in message
    for table in CONTRACTS:
        assert read(spark, settings, table).count() == 0, table


def test_a_batch_names_the_currencies_it_has_no_rate_for(day_by_day):
    from crm_lakehouse.generator.names import UNKNOWN_CURRENCIES

    [day0] = day_by_day.silver_day0
    named = day0.currencies_without_rate
    assert named and {currency for _, currency, _ in named} <= set(UNKNOWN_CURRENCIES)
    quarantined = sum(rules.get("known_currency", 0) for rules in day0.quarantined_by_rule.values())
    assert sum(lines for _, _, lines in named) == quarantined


def test_rows_in_are_bronzes_own_count_and_a_lost_row_stops_the_batch(spark, base_settings, tmp_path):
    """Rows in come from bronze's commit metrics, or from its change feed where a commit has none
    (a writer with metrics off: the second source here); either way a row a transform lost stops
    the batch."""
    from crm_lakehouse.batches import BatchPlan
    from crm_lakehouse.delta_writes import ensure_table, rows_inserted
    from crm_lakehouse.silver.contracts import CUSTOMERS_HISTORY
    from crm_lakehouse.silver.quality import ACCEPTED, QUARANTINED
    from crm_lakehouse.silver.steps import Entity

    settings = settings_for(base_settings, tmp_path)
    with_metrics, without = [s.name for s in settings.sources if s.entity == "customers"][:2]
    lines = lambda *values: spark.createDataFrame([(v,) for v in values], "line string")  # noqa: E731
    for source in (with_metrics, without):
        bronze = settings.table_path("bronze", source)
        ensure_table(spark, bronze, lines().schema)                                            # version 0
        lines("a", "b", "c").write.format("delta").mode("append").save(bronze)                  # version 1
        spark.conf.set("spark.databricks.delta.history.metricsEnabled", str(source == with_metrics).lower())
        try:
            lines("d", "e").write.format("delta").mode("append").save(bronze)                   # version 2
        finally:
            spark.conf.unset("spark.databricks.delta.history.metricsEnabled")
    # The first source is counted from its commits, the second cannot be and is read instead.
    assert rows_inserted(spark, settings.table_path("bronze", with_metrics), (1, 2)) == 5
    assert rows_inserted(spark, settings.table_path("bronze", without), (1, 2)) is None
    plan = BatchPlan(batch_id=7, inputs={with_metrics: (1, 2), without: (1, 2)},
                     consumed={with_metrics: 2, without: 2}, outputs_before={})
    fates = [(source, fate, rules) for source in (with_metrics, without)
             for fate, rules in [(ACCEPTED, [])] * 4 + [(QUARANTINED, ["valid_email"])]]
    triaged = spark.createDataFrame(fates, "_source string, fate string, broken_rules array<string>")

    rows, by_rule = silver_build._reconcile(spark, settings, plan, [Entity(CUSTOMERS_HISTORY, triaged, [])], None, 7)
    assert sorted((r["source"], r["rows_in"], r["accepted"], r["quarantined"]) for r in rows) == \
        sorted([(with_metrics, 5, 4, 1), (without, 5, 4, 1)])
    assert by_rule == {with_metrics: {"valid_email": 1}, without: {"valid_email": 1}}
    for source in (with_metrics, without):
        lost = triaged.where((F.col("_source") != source) | (F.col("fate") == QUARANTINED)).unionByName(
            triaged.where((F.col("_source") == source) & (F.col("fate") == ACCEPTED)).limit(3))
        with pytest.raises(silver_build.ReconciliationError, match=f"source {source}: 5 rows in but 3 accepted"):
            silver_build._reconcile(spark, settings, plan, [Entity(CUSTOMERS_HISTORY, lost, [])], None, 7)

"""Table maintenance: OPTIMIZE + VACUUM (the weekly maintain job) and restore after an operator's mistake."""

from __future__ import annotations

from chispa import assert_df_equality

from crm_lakehouse.cli import main


def test_a_bad_delete_is_restored_and_bad_versions_are_one_line(spark, tmp_path, capsys):
    lakehouse = tmp_path / "lakehouse"
    copy = lakehouse / "gold" / "sales_daily"
    rows = [("2026-01-01", region, 10 * i) for i, region in enumerate(["eu", "cn", "us"] * 3)]
    spark.createDataFrame(rows, "sales_date string, region string, revenue_usd int").write.format("delta").save(str(copy))
    spark.sql(f"UPDATE delta.`{copy}` SET revenue_usd = revenue_usd + 1 WHERE region = 'us'")  # version 1
    before = spark.read.format("delta").load(str(copy)).collect()
    good_version = 1
    spark.sql(f"DELETE FROM delta.`{copy}` WHERE region = 'eu'")  # the mistake
    assert spark.read.format("delta").load(str(copy)).where("region = 'eu'").count() == 0

    assert main(["restore", "gold.sales_daily", "--version", str(good_version), "--lakehouse", str(lakehouse)]) == 0
    out = capsys.readouterr().out
    assert f"gold.sales_daily: restored to version {good_version} (was {good_version + 1}, now version " \
           f"{good_version + 2}" in out and f"Undo with --version {good_version + 1}" in out
    assert_df_equality(spark.read.format("delta").load(str(copy)), spark.createDataFrame(before, "sales_date string, region string, revenue_usd int"),
                       ignore_row_order=True, ignore_nullable=True)

    assert main(["restore", "gold.sales_daily", "--version", "999", "--lakehouse", str(lakehouse)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no earlier version 999" in err and "fix: give --version between" in err
    assert main(["restore", "gold.sales_dayly", "--version", "0", "--lakehouse", str(lakehouse)]) == 2
    err = capsys.readouterr().err
    assert "no Delta table 'gold.sales_dayly'" in err and "did you mean 'gold.sales_daily'" in err


def test_maintain_compacts_clustered_tables_and_sets_the_vacuum_retention(spark, base_settings, tmp_path):
    from crm_lakehouse.delta_writes import ensure_table
    from crm_lakehouse.maintain import maintain
    from tests.conftest import settings_for

    settings = settings_for(base_settings, tmp_path / "lakehouse")
    path = str(tmp_path / "lakehouse" / "gold" / "sales_daily")
    schema = "sales_date string, region string, revenue_usd int"
    ensure_table(spark, path, spark.createDataFrame([], schema).schema, cluster_by=("sales_date", "region"))
    for day in range(3):  # three daily writes, three small files
        spark.createDataFrame([(f"2026-01-0{day + 1}", "eu", day)], schema).write.format("delta").mode("append").save(path)
    rows = sorted(spark.read.format("delta").load(path).collect())

    [first] = maintain(spark, settings)
    assert (first.table, first.files_removed, first.files_added, first.files_vacuumed) == ("gold.sales_daily", 3, 1, 0)
    properties = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()["properties"]
    assert properties["delta.deletedFileRetentionDuration"] == "interval 168 hours"
    assert sorted(spark.read.format("delta").load(path).collect()) == rows
    [second] = maintain(spark, settings)
    assert (second.files_removed, second.files_added) == (0, 0)  # nothing left to compact
    operations = [r["operation"] for r in spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()]
    assert operations.count("SET TBLPROPERTIES") == 1  # the retention is set once, not every week

"""The lakehouses the test processes share: a write into one fails the run, and the process that
only loads one (the other built it) still finds its tables by name."""

from __future__ import annotations

import pytest

from tests.conftest import kept_read_only, settings_for, shared_lakehouse


def test_a_file_written_into_a_shared_lakehouse_fails_at_teardown_and_reading_does_not(tmp_path):
    (tmp_path / "_delta_log").mkdir()
    (tmp_path / "_delta_log" / "0.json").write_text("{}")
    with kept_read_only(tmp_path, "one_shot"):
        (tmp_path / "_delta_log" / "0.json").read_text()
        (tmp_path / "_delta_log" / "0.json").write_text("{}")  # the same bytes again, as MLflow's loads do
    with pytest.raises(AssertionError, match=r"one_shot is shared read-only, but a test changed 1 of its files "
                                             r"\(_delta_log/1.json\): copy it before writing"):
        with kept_read_only(tmp_path, "one_shot"):
            (tmp_path / "_delta_log" / "1.json").write_text("{}")


def test_a_loaded_shared_lakehouse_is_registered_in_this_process_without_a_file_written(spark, base_settings,
                                                                                       tmp_path):
    # As the process that did not build it sees it: the files, and no name in this catalog.
    settings = settings_for(base_settings, tmp_path)
    path = settings.table_path("bronze", "probe_built_by_the_other_process")
    spark.createDataFrame([(1,)], "id int").write.format("delta").save(path)
    assert not spark.catalog.tableExists("bronze.probe_built_by_the_other_process")
    try:
        with shared_lakehouse(spark, settings, "probe"):  # its teardown would fail on a written file
            assert spark.table("bronze.probe_built_by_the_other_process").count() == 1
    finally:
        spark.sql("DROP TABLE IF EXISTS bronze.probe_built_by_the_other_process")

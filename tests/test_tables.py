"""Table contracts say how erasure finds a person in them; a table cannot skip saying it. A
layer's tables are created side by side, and a table its contract no longer describes still
stops the layer with the rebuild that fixes it."""

from __future__ import annotations

import pytest
from pyspark.sql.types import LongType, StructType

from crm_lakehouse.gold import contracts as gold
from crm_lakehouse.silver import contracts as silver
from crm_lakehouse.delta_writes import is_delta_table
from crm_lakehouse.errors import LakehouseError
from crm_lakehouse.tables import SUBJECT_MATCHES, TableContract, ensure_contract, ensure_each, field, required

EVERY_TABLE = [*silver.CONTRACTS.values(), *gold.CONTRACTS.values(), gold.CHURN_SCORES]
# Columns that name or point at a person: a table holding one must be erasable through it.
PERSON_COLUMNS = {"customer_id", "source_customer_id", "retired_customer_id", "raw_record", "source_customer_id_l",
                  "source_customer_id_r"}


@pytest.mark.parametrize("contract", EVERY_TABLE, ids=lambda c: c.name)
def test_every_table_with_a_person_column_is_found_by_erase_through_each_of_them(contract):
    matched = {column for kind in contract.subject_match for column in SUBJECT_MATCHES[kind]}
    assert PERSON_COLUMNS & set(contract.columns) <= matched


def test_a_contract_naming_an_unknown_match_or_lacking_its_columns_is_refused():
    schema = StructType([required("customer_id")])
    with pytest.raises(ValueError, match="'email' is not one of"):
        TableContract(name="t", grain="g", key=("customer_id",), schema=schema, subject_match=("email",))
    with pytest.raises(ValueError, match=r"'record' needs the columns \['source', 'source_customer_id'\]"):
        TableContract(name="t", grain="g", key=("customer_id",), schema=schema, subject_match=("record",))
    with pytest.raises(TypeError):
        TableContract(name="t", grain="g", key=("customer_id",), schema=schema)  # noqa  (no subject_match)


def test_tables_ensured_side_by_side_are_all_made_and_a_stale_one_is_named_with_its_fix(spark, tmp_path):
    def contract(name: str, *columns: str) -> TableContract:
        return TableContract(name=name, grain="one row per id", key=("id",), subject_match=(),
                             schema=StructType([required("id"), *[field(c, LongType()) for c in columns]]))

    contracts = [contract(f"t{n}", "amount") for n in range(5)]
    # Under the workflow runner's job group, so that a timeout cancels the threads' Spark jobs too.
    spark.sparkContext.setJobGroup("ensure-each-test", "a workflow job")
    try:
        ensure_each(spark, lambda c: ensure_contract(spark, str(tmp_path / c.name), c), contracts)
    finally:
        spark.sparkContext._jsc.clearJobGroup()
    assert len(spark.sparkContext.statusTracker().getJobIdsForGroup("ensure-each-test")) >= len(contracts)
    assert all(is_delta_table(spark, str(tmp_path / c.name)) for c in contracts)
    assert all(spark.read.format("delta").load(str(tmp_path / c.name)).columns == ["id", "amount"] for c in contracts)
    # A newer contract renamed t3's column: that table is refused, the others gain nothing wrong.
    renamed = [*contracts[:3], contract("t3", "total"), contract("t5", "amount")]
    with pytest.raises(LakehouseError, match="columns amount differ from its contract") as refused:
        ensure_each(spark, lambda c: ensure_contract(spark, str(tmp_path / c.name), c), renamed)
    assert str(tmp_path / "t3") in str(refused.value) and "rebuild the layer" in str(refused.value)
    assert is_delta_table(spark, str(tmp_path / "t5"))  # the other tables were still ensured

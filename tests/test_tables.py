"""Table contracts say how erasure finds a person in them; a table cannot skip saying it."""

from __future__ import annotations

import pytest
from pyspark.sql.types import StructType

from crm_lakehouse.gold import contracts as gold
from crm_lakehouse.silver import contracts as silver
from crm_lakehouse.tables import SUBJECT_MATCHES, TableContract, required

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

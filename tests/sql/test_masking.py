"""The masking policy on inline data: the customer view generated from the contracts' PII
declarations, run by Spark over a tiny gold.customer_360 Delta table."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from pyspark.sql import Row

from crm_lakehouse.gold.contracts import CUSTOMER_360
from crm_lakehouse.sql import analytics
from crm_lakehouse.tables import Mask, TableContract, field


def contract_rows(spark, contract: TableContract, rows: list[dict]):
    """Rows with every contract column (None where not given, [] and 0 for required arrays and numbers)."""
    def value(f, given):
        if f.name in given:
            return given[f.name]
        if f.nullable:
            return None
        kind = f.dataType.typeName()
        return [] if kind == "array" else Decimal(0) if kind == "decimal" else 0 if kind in ("integer", "long") else "x"
    return spark.createDataFrame([Row(*[value(f, r) for f in contract.schema.fields]) for r in rows], contract.schema)


@pytest.fixture(scope="module")
def customer_view(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("masking")
    people = [
        dict(customer_id="c1", full_name="Ana Lima", email="ana.lima@example.com", phone="+5511987654321",
             birth_date=date(1987, 4, 2), gender="F", city="Lisbon", address="Rua A 1"),
        dict(customer_id="c2", full_name="Bo Chen", email="bo@example.cn", phone="+8613800138000",
             birth_date=date(1990, 1, 1), gender="M", city="Lisbon", address="Rua B 2"),
        dict(customer_id="c3", full_name="", email=None, phone=None, birth_date=None, gender=None,
             city="Hamlet", address=None),
    ]
    gold = [dict(person, customer_status="active") for person in people]
    gold.append(dict(customer_id="unknown", full_name=None, customer_status="unknown"))
    contract_rows(spark, CUSTOMER_360, gold).write.format("delta").save(str(root / "gold_customer_360"))

    def locate(layer: str, table: str) -> str:
        return f"{root}/{layer}_{table}"

    def rows(k: int) -> dict[str, tuple]:
        query = analytics.view_queries(k, analytics.shared_values(spark, k, locate))["customer_360"]
        frame = spark.sql(re.sub(r"\b(gold)\.(\w+)", lambda m: f"delta.`{locate(m.group(1), m.group(2))}`", query))
        return frame.columns, {r.customer_id: (r.name_initial, r.email_masked, r.phone_last4, r.birth_decade, r.city)
                               for r in frame.collect()}
    rows.root = root  # the tables' folder, for a test that copies them
    return rows


def test_each_personal_column_is_shown_as_its_contract_declares(customer_view):
    columns, shown = customer_view(2)
    assert shown == {
        "c1": ("A.", "a***@example.com", "4321", 1980, "Lisbon"),
        "c2": ("B.", "b***@example.cn", "8000", 1990, "Lisbon"),
        "c3": (None, None, None, None, None),        # the only customer in Hamlet: its city is hidden
        "unknown": (None, None, None, None, None),
    }
    assert not set(columns) & {"full_name", "email", "phone", "birth_date", "address"}
    assert columns.index("name_initial") == columns.index("deleted_at") + 1   # the profile follows the name
    # in the order the view showed it when it joined silver: dashboards that read by position keep working
    assert columns[columns.index("name_initial"):columns.index("city") + 1] == \
        ["name_initial", "email_masked", "phone_last4", "birth_decade", "gender", "city"]


def test_k_decides_which_cities_are_shown(customer_view):
    assert {cid: row[4] for cid, row in customer_view(1)[1].items()} == \
        {"c1": "Lisbon", "c2": "Lisbon", "c3": "Hamlet", "unknown": None}
    assert {row[4] for row in customer_view(3)[1].values()} == {None}


def test_every_view_column_has_a_comment_and_the_masked_ones_say_so():
    comments = analytics.column_comments("customer_360", 5)
    assert comments["birth_decade"] == "decade of birth_date, e.g. 1980 for 1980-1989 (masked)"
    assert comments["city"] == "city, shown only where at least 5 customers share it (masked)"


def test_a_contract_refuses_masks_it_cannot_apply():
    from pyspark.sql.types import StringType, StructType

    schema = StructType([field("email", StringType())])
    with pytest.raises(ValueError, match="is not one of"):
        Mask("scramble", "email_scrambled")
    with pytest.raises(ValueError, match="a hidden column has no shown_as"):
        Mask("hidden", "email")
    with pytest.raises(ValueError, match="pii for columns it does not have"):
        TableContract(name="t", grain="g", key=("email",), schema=schema, subject_match=(),
                      pii={"phone": Mask("last4", "phone_last4")})


def test_the_endpoint_recounts_the_cities_and_replaces_the_view_when_they_change(spark, customer_view,
                                                                               tmp_path_factory):
    from crm_lakehouse.sql.server import _recount_shared_values, customer_version

    copy = tmp_path_factory.mktemp("recount")
    spark.read.format("delta").load(str(customer_view.root / "gold_customer_360")).write.format("delta") \
        .save(str(copy / "gold_customer_360"))

    def locate(layer: str, table: str) -> str:
        return f"{copy}/{layer}_{table}"

    shared = analytics.shared_values(spark, 2, locate)
    try:
        analytics.create_views(spark, 2, shared, locate, only=("customer_360",))
        assert _recount_shared_values(spark, 2, shared, locate) == shared == {"city": ["Lisbon"]}
        before = customer_version(spark, locate)
        assert customer_version(spark, locate) == before == 0   # reading moves nothing: no recount
        newcomer = dict(customer_id="c4", full_name="Dee", city="Hamlet", customer_status="active")
        contract_rows(spark, CUSTOMER_360, [newcomer]).write.format("delta").mode("append").save(locate("gold", "customer_360"))
        assert customer_version(spark, locate) == 1             # the table moving triggers one
        assert _recount_shared_values(spark, 2, shared, locate) == {"city": ["Hamlet", "Lisbon"]}
        shown = dict(spark.sql("SELECT customer_id, city FROM analytics.customer_360").collect())
        assert shown == {"c1": "Lisbon", "c2": "Lisbon", "c3": "Hamlet", "c4": "Hamlet", "unknown": None}
    finally:
        spark.sql("DROP SCHEMA IF EXISTS analytics CASCADE")


def test_the_customer_view_and_its_city_count_read_gold_customer_360_alone():
    """One table, so a lookup plans one Delta scan: joining silver's profile took 0.996 s a lookup
    on the scale-1 benchmark lakehouse, one table 0.611 s (docs/development.md)."""
    queries = [analytics.view_queries(2, {"city": []})["customer_360"],
               analytics.shared_values_query(analytics._CUSTOMERS_SHOWN, "c.city", 2)]
    assert [analytics._RAW_TABLE.findall(query) for query in queries] == [[("gold", "customer_360")]] * 2

"""The gold batch's steps on inline data: each runs only when an input it reads changed, and
recomputes only the keys the change touches."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest

from crm_lakehouse.batches import BatchPlan, Kept
from crm_lakehouse.gold.contracts import CUSTOMER_360, FACT_SALES, SALES_DAILY, SALES_MONTHLY
from crm_lakehouse.gold.steps import GoldBatch, run_gold_steps
from crm_lakehouse.silver import contracts as silver
from tests.sql.test_masking import contract_rows

AS_OF = "2026-06-30"
DAY = dt.date(2026, 6, 20)
AT = dt.datetime(2026, 6, 20, 10, 0)


def line(order_id: str, product_id: str) -> dict:
    """A line without a country of its own (its facts show the customer's)."""
    return dict(source="s", order_id=order_id, line_number=1, customer_id="c1", region="eu", channel="web",
                country=None, ordered_at=AT, order_local_date=DAY, product_id=product_id, quantity=1,
                unit_price=Decimal("10.00"), discount=Decimal("0.00"), net_amount=Decimal("10.00"), currency="EUR",
                net_amount_reporting=Decimal("11.00"), status="completed")


def product(product_id: str, name: str, price: str) -> dict:
    return dict(product_id=product_id, product_name=name, category="shoes", list_price_usd=Decimal(price), source="erp")


@pytest.fixture(scope="module")
def silver_now(spark):
    """Silver as the batch consumes it: one customer with two orders of two products, two calls."""
    interaction = dict(source="s", region="eu", customer_id="c1", customer_source="s", source_customer_id="1",
                       interaction_type="call", occurred_at=AT, occurred_local_date=DAY)
    return {
        silver.CUSTOMERS.name: contract_rows(spark, silver.CUSTOMERS, [dict(
            customer_id="c1", full_name="Ana Lima", email="ana@example.com", country="PT", region="eu",
            home_currency="EUR", source_systems=["s"], channels=["web"], record_count=1)]),
        silver.CUSTOMER_IDENTITY_MAP.name: contract_rows(spark, silver.CUSTOMER_IDENTITY_MAP, [dict(
            source="s", source_customer_id="1", customer_id="c1", region="eu", channel="web", is_deleted=False)]),
        silver.ORDER_LINES.name: contract_rows(spark, silver.ORDER_LINES, [line("o1", "p1"), line("o2", "p2")]),
        silver.PRODUCTS.name: contract_rows(spark, silver.PRODUCTS, [product("p1", "Runner II", "50.00"),
                                                                     product("p2", "Sandal", "25.00")]),
        silver.INTERACTIONS.name: contract_rows(spark, silver.INTERACTIONS, [
            dict(interaction, interaction_id="i1", satisfaction_score=4),
            dict(interaction, interaction_id="i2", satisfaction_score=2)]),
    }


def changes(frame, change_type: str):
    from pyspark.sql import functions as F

    return frame.withColumn("_change_type", F.lit(change_type))


def gold_before(spark, silver_now) -> dict:
    """Gold as the last batch left it: the two orders' facts (p1 then still named "Runner"), the customer."""
    from crm_lakehouse.gold.sales import fact_sales

    old_products = contract_rows(spark, silver.PRODUCTS, [product("p1", "Runner", "50.00"),
                                                          product("p2", "Sandal", "25.00")])
    facts = fact_sales(silver_now[silver.ORDER_LINES.name], old_products, silver_now[silver.CUSTOMERS.name], 0)
    return {FACT_SALES.name: facts,
            CUSTOMER_360.name: contract_rows(spark, CUSTOMER_360, [dict(customer_id="c1", customer_status="active",
                                                                       full_name="Ana Lima", churn_probability=0.2)]),
            SALES_DAILY.name: contract_rows(spark, SALES_DAILY, []),
            SALES_MONTHLY.name: contract_rows(spark, SALES_MONTHLY, [])}


@contextmanager
def batch(spark, base_settings, silver_now, changed: dict) -> Iterator[GoldBatch]:
    """The batch run on ``changed``; its kept intermediates, which its MERGE sources read, live
    until the block ends."""
    work = GoldBatch(BatchPlan(batch_id=1, inputs={}, consumed={}, outputs_before={}), base_settings,
                     before=gold_before(spark, silver_now), now=silver_now, changed=changed, keep=Kept("gold", 1),
                     as_of=AS_OF, previous_as_of=AS_OF)
    run_gold_steps(work)
    try:
        yield work
    finally:
        work.keep.release()


def test_new_interactions_alone_recompute_their_customer_and_run_no_sales_step(spark, base_settings, silver_now,
                                                                               caplog):
    calls = silver_now[silver.INTERACTIONS.name]
    caplog.set_level(logging.INFO, logger="crm_lakehouse.batches")
    with batch(spark, base_settings, silver_now, {silver.INTERACTIONS.name: changes(calls, "insert")}) as work:
        row = work.merges[0].rows.where("NOT _delete").collect()
    assert "gold batch 1: nothing new for sales" in caplog.messages
    assert [merge.contract.name for merge in work.merges] == ["customer_360"]
    assert work.affected == {"customers": 1, "lines": 0, "groups": 0}
    assert [(r.customer_id, r.interactions_90d, r.avg_satisfaction_90d, r.orders_count, r.email, r.churn_probability)
            for r in row] == [("c1", 2, 3.0, 2, "ana@example.com", 0.2)]   # orders from the facts as they were


def test_a_renamed_product_touches_only_its_lines_and_no_customer(spark, base_settings, silver_now, caplog):
    """A product's new name reaches its facts and their sales groups; another product whose
    price alone changed touches nothing a fact shows; no customer is recomputed."""
    products = silver_now[silver.PRODUCTS.name]
    before = contract_rows(spark, silver.PRODUCTS, [product("p1", "Runner", "50.00"), product("p2", "Sandal", "20.00")])
    changed = changes(before, "update_preimage").unionByName(changes(products, "update_postimage"))
    caplog.set_level(logging.INFO, logger="crm_lakehouse.batches")
    with batch(spark, base_settings, silver_now, {silver.PRODUCTS.name: changed}) as work:
        facts = work.merges[0].rows.where("NOT _delete").collect()
        daily = work.merges[1].rows.where("NOT _delete").collect()
    assert "gold batch 1: nothing new for customers" in caplog.messages
    assert [merge.contract.name for merge in work.merges] == ["fact_sales", "sales_daily", "sales_monthly"]
    assert work.affected == {"customers": 0, "lines": 1, "groups": 1}
    assert [(f.order_id, f.product_name) for f in facts] == [("o1", "Runner II")]
    # The group is recomputed from all its facts, the untouched o2 included.
    assert [(d.sales_date, d.orders, d.net_sales_reporting) for d in daily] == [(DAY, 2, Decimal("22.00"))]


@pytest.mark.parametrize("change, touched_lines", [
    (dict(country="ES"), 2),                      # a move: the facts of her lines without a country show it
    (dict(email="ana.lima@example.org"), 0),      # a new e-mail: no fact shows it
])
def test_a_customer_change_touches_her_lines_only_when_her_country_changed(spark, base_settings, silver_now, change,
                                                                           touched_lines):
    from pyspark.sql import functions as F

    now = silver_now[silver.CUSTOMERS.name]
    after = now.select(*[F.lit(change[c]).alias(c) if c in change else F.col(c) for c in now.columns])
    moved = dict(silver_now, **{silver.CUSTOMERS.name: after})
    changed = changes(now, "update_preimage").unionByName(changes(after, "update_postimage"))
    with batch(spark, base_settings, moved, {silver.CUSTOMERS.name: changed}) as work:
        countries = {row.country for merge in work.merges if merge.contract.name == "fact_sales"
                     for row in merge.rows.where("NOT _delete").collect()}
    assert work.affected["lines"] == touched_lines
    assert work.affected["customers"] == 1
    assert countries == ({"ES"} if touched_lines else set())

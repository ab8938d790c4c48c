"""Order lines: the rate of the order's local date (or the latest before it), restatement when the
day's rate arrives late, signed amounts for returns, and order totals that stay unknown rather
than understated."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pyspark.sql import functions as F

from crm_lakehouse.silver.contracts import ORDER_LINES
from crm_lakehouse.silver.orders import line_amount, orders, restate_provisional_amounts, with_reporting_amounts

D = dt.date
RATES = [("EUR", D(2026, 3, 2), Decimal("1.100000")), ("EUR", D(2026, 3, 5), Decimal("1.200000")),
         ("CNY", D(2026, 2, 1), Decimal("0.140000"))]


def rates(spark, rows=RATES):
    return spark.createDataFrame(rows, "currency string, rate_date date, rate decimal(18,6)")


def test_each_line_takes_its_days_rate_or_the_latest_within_the_lookback(spark):
    lines = spark.createDataFrame([
        ("L1", "EUR", D(2026, 3, 5)),   # that day's rate
        ("L2", "EUR", D(2026, 3, 4)),   # no fixing that day: the 2nd's
        ("L3", "EUR", D(2026, 3, 1)),   # before any rate
        ("L4", "CNY", D(2026, 3, 1)),   # last rate 28 days earlier: beyond the lookback
        ("L5", "USD", D(2026, 3, 4)),   # already in the reporting currency
        ("L6", "XYZ", D(2026, 3, 4)),   # a currency no rate ever named
    ], "line string, currency string, order_local_date date")
    got = {r["line"]: (r["is_known_currency"], r["fx_rate"], r["fx_rate_date"])
           for r in with_reporting_amounts(lines, rates(spark), "USD").collect()}
    assert got == {
        "L1": (True, Decimal("1.200000"), D(2026, 3, 5)),
        "L2": (True, Decimal("1.100000"), D(2026, 3, 2)),
        "L3": (True, None, None),
        "L4": (True, None, None),
        "L5": (True, Decimal("1.000000"), None),
        "L6": (False, None, None),
    }


def test_a_return_line_is_negative_whatever_sign_its_total_and_discount_were_written_with(spark):
    rows = spark.createDataFrame([
        ("sale", Decimal("10.00"), 3, None, Decimal("5.00")),
        ("return, unsigned total", None, -2, Decimal("40.00"), Decimal("4.00")),
        ("return, signed total", None, -2, Decimal("-40.00"), Decimal("-4.00")),
        ("total wins over price", Decimal("9.99"), 1, Decimal("8.00"), None),
    ], "what string, unit_price decimal(18,2), quantity int, line_total decimal(18,2), discount decimal(18,2)")
    got = {r["what"]: r["amount"] for r in rows.select(
        "what", line_amount(F.col("unit_price"), F.col("quantity"), F.col("line_total"), F.col("discount"))
        .alias("amount")).collect()}
    assert got == {"sale": Decimal("25.00"), "return, unsigned total": Decimal("-36.00"),
                   "return, signed total": Decimal("-36.00"), "total wins over price": Decimal("8.00")}


def stored_line(order_id: str, line: int, day: dt.date, currency: str, net: str, rate: str | None,
                rate_date: dt.date | None) -> dict:
    reporting = None if rate is None else (Decimal(net) * Decimal(rate)).quantize(Decimal("0.01"))
    return {"source": "eu_shop", "order_id": order_id, "line_number": line, "customer_id": "C1",
            "customer_source": "eu_shop", "source_customer_id": "7", "region": "eu", "channel": "web",
            "country": "DE", "ordered_at": dt.datetime.combine(day, dt.time(12)), "order_local_date": day,
            "product_id": "P1", "quantity": 1, "unit_price": Decimal(net), "discount": Decimal("0.00"),
            "net_amount": Decimal(net), "currency": currency, "fx_rate": None if rate is None else Decimal(rate),
            "fx_rate_date": rate_date, "net_amount_reporting": reporting, "status": "completed",
            "store_id": None, "_batch_id": 0, "_source_file": "f.csv"}


def test_a_late_rate_restates_only_the_lines_it_improves(spark):
    stored = spark.createDataFrame([
        stored_line("A", 1, D(2026, 3, 5), "EUR", "100.00", "1.100000", D(2026, 3, 2)),  # provisional
        stored_line("B", 1, D(2026, 3, 2), "EUR", "100.00", "1.100000", D(2026, 3, 2)),  # final already
        stored_line("C", 1, D(2026, 3, 5), "EUR", "50.00", None, None),                  # had no rate at all
        stored_line("D", 1, D(2026, 3, 5), "USD", "70.00", "1.000000", None),            # reporting currency
    ], ORDER_LINES.schema)
    restated = restate_provisional_amounts(stored, rates(spark), "USD", batch_id=4)
    assert restated.columns == ORDER_LINES.columns
    got = {r["order_id"]: (r["fx_rate"], r["fx_rate_date"], r["net_amount_reporting"], r["_batch_id"])
           for r in restated.collect()}
    assert got == {"A": (Decimal("1.200000"), D(2026, 3, 5), Decimal("120.00"), 4),
                   "C": (Decimal("1.200000"), D(2026, 3, 5), Decimal("60.00"), 4)}
    # Restated lines carry their day's rate: the same rates restate them no further.
    assert restate_provisional_amounts(restated, rates(spark), "USD", batch_id=5).count() == 0


def test_an_order_total_in_the_reporting_currency_is_unknown_while_one_line_lacks_a_rate(spark):
    lines = spark.createDataFrame([
        stored_line("A", 1, D(2026, 3, 5), "EUR", "100.00", "1.200000", D(2026, 3, 5)),
        stored_line("A", 2, D(2026, 3, 5), "EUR", "10.00", "1.200000", D(2026, 3, 5)),
        stored_line("B", 1, D(2026, 3, 5), "EUR", "100.00", "1.200000", D(2026, 3, 5)),
        stored_line("B", 2, D(2026, 3, 5), "EUR", "10.00", None, None),
    ], ORDER_LINES.schema)
    got = {r["order_id"]: (r["line_count"], r["net_amount"], r["net_amount_reporting"])
           for r in orders(lines, batch_id=1).collect()}
    assert got == {"A": (2, Decimal("110.00"), Decimal("132.00")), "B": (2, Decimal("110.00"), None)}

"""gold.fact_sales, gold.sales_daily and gold.sales_monthly on hand-written order lines: which
lines count as sold, returned or neither, the unknown customer, category and country members,
and which groups get a row."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from crm_lakehouse.gold.contracts import UNKNOWN_CUSTOMER_ID
from crm_lakehouse.gold.sales import UNKNOWN_CATEGORY, UNKNOWN_COUNTRY, fact_sales, sales_daily, sales_monthly

LINE_COLUMNS = ("source order_id line_number customer_id product_id region country channel ordered_at "
                "order_local_date status quantity currency net_amount net_amount_reporting _batch_id").split()
LINE_SCHEMA = ("source string, order_id string, line_number int, customer_id string, product_id string, "
               "region string, country string, channel string, ordered_at timestamp, order_local_date date, "
               "status string, quantity int, currency string, net_amount decimal(18,2), "
               "net_amount_reporting decimal(18,2), _batch_id long")
DAY = dt.date(2026, 3, 2)
AT = dt.datetime(2026, 3, 2, 10, 0)


def line(order_id: str, status: str, quantity: int, amount: str | None, *, customer: str | None = "c1",
         product: str = "p1", country: str | None = "DE", line_number: int = 1) -> tuple:
    money = None if amount is None else Decimal(amount)
    return ("eu_shop", order_id, line_number, customer, product, "eu", country, "web", AT, DAY, status, quantity,
            "EUR", money if money is not None else Decimal("1.00"), money, 7)


def facts_of(spark, lines: list[tuple]):
    order_lines = spark.createDataFrame(lines, LINE_SCHEMA)
    products = spark.createDataFrame([("p1", "Kettle", "kitchen")], "product_id string, product_name string, category string")
    customers = spark.createDataFrame([("c1", "DE"), ("c2", "AT")], "customer_id string, country string")
    return fact_sales(order_lines, products, customers, batch_id=3)


def measures(facts) -> dict[str, tuple]:
    return {r["order_id"]: (r["gross_sales_reporting"], r["returns_reporting"], r["net_sales_reporting"])
            for r in facts.collect()}


def test_completed_and_returned_lines_are_sold_reversals_are_returns_cancelled_and_pending_are_neither(spark):
    facts = facts_of(spark, [
        line("completed", "completed", 2, "100.00"),
        line("returned", "returned", 1, "40.00"),
        line("cancelled", "cancelled", 1, "30.00"),
        line("pending", "pending", 1, "25.00"),
        line("credit_note", "completed", -1, "-15.00"),
        line("pending_reversal", "pending", -1, "-5.00"),
        line("no_rate", "completed", 1, None),
    ])
    zero = Decimal("0.00")
    assert measures(facts) == {
        "completed": (Decimal("100.00"), zero, Decimal("100.00")),
        "returned": (Decimal("40.00"), Decimal("40.00"), zero),
        "cancelled": (zero, zero, zero),
        "pending": (zero, zero, zero),
        "credit_note": (zero, Decimal("15.00"), Decimal("-15.00")),
        "pending_reversal": (zero, zero, zero),
        # Unknown in the reporting currency: counted as nothing, not guessed.
        "no_rate": (zero, zero, zero),
    }
    assert {r["_batch_id"] for r in facts.collect()} == {3}


def test_guest_lines_unknown_products_and_missing_countries_get_their_members(spark):
    facts = facts_of(spark, [
        line("guest", "completed", 1, "10.00", customer=None, country=None),
        line("new_product", "completed", 1, "10.00", product="p9"),
        line("ship_to_missing", "completed", 1, "10.00", customer="c2", country=None),
        line("ship_to_given", "completed", 1, "10.00", customer="c2", country="FR"),
    ])
    rows = {r["order_id"]: r for r in facts.collect()}
    assert rows["guest"]["customer_id"] == UNKNOWN_CUSTOMER_ID and rows["guest"]["country"] is None
    assert rows["new_product"]["category"] == UNKNOWN_CATEGORY and rows["new_product"]["product_name"] is None
    assert rows["ship_to_missing"]["country"] == "AT"  # the customer's country
    assert rows["ship_to_given"]["country"] == "FR"  # the line's own
    assert rows["ship_to_given"]["category"] == "kitchen" and rows["ship_to_given"]["order_date_utc"] == DAY


def test_sales_daily_counts_kept_orders_known_customers_and_net_units_per_group(spark):
    facts = facts_of(spark, [
        line("o1", "completed", 2, "100.00", line_number=1),
        line("o1", "completed", 1, "20.00", line_number=2),
        line("o2", "completed", 3, "60.00", customer="c2", country="DE"),
        line("o3", "returned", 1, "40.00"),
        line("o4", "completed", -1, "-15.00"),
        line("guest1", "completed", 1, "5.00", customer=None),
        line("guest2", "completed", 1, "7.00", customer=None),
        # Only cancelled and pending lines in France: no row for that group.
        line("o5", "cancelled", 1, "30.00", country="FR"),
        line("o6", "pending", 1, "30.00", country="FR"),
        # A guest without a country is grouped under the unknown country.
        line("guest3", "completed", 1, "9.00", customer=None, country=None),
    ])
    daily = {(r["country"], r["category"]): r.asDict() for r in sales_daily(facts, batch_id=3).collect()}
    assert set(daily) == {("DE", "kitchen"), (UNKNOWN_COUNTRY, "kitchen")}
    germany = daily[("DE", "kitchen")]
    assert germany["sales_date"] == DAY and germany["region"] == "eu" and germany["channel"] == "web"
    assert germany["orders"] == 4  # o1, o2 and the two guests: completed sales; a return or credit note is none
    assert germany["customers"] == 2  # c1 and c2; the guests are not one customer
    assert germany["units"] == 2 + 1 + 3 - 1 + 1 + 1  # the returned sale nets to nothing, the credit note takes one back
    assert germany["gross_sales_reporting"] == Decimal("232.00")  # 100 + 20 + 60 + 40 + 5 + 7
    assert germany["returns_reporting"] == Decimal("55.00")  # 40 + 15
    assert germany["net_sales_reporting"] == Decimal("177.00")
    unknown = daily[(UNKNOWN_COUNTRY, "kitchen")]
    assert (unknown["orders"], unknown["customers"], unknown["net_sales_reporting"]) == (1, 0, Decimal("9.00"))


def test_a_month_counts_a_customer_and_an_order_once_however_many_days_they_span(spark):
    later = DAY + dt.timedelta(days=20)
    next_month = dt.date(2026, 4, 1)

    def on(day: dt.date, row: tuple) -> tuple:
        return (*row[:9], day, *row[10:])

    facts = facts_of(spark, [
        line("o1", "completed", 2, "100.00"),
        on(later, line("o2", "completed", 1, "20.00")),          # c1 again, later in March
        on(later, line("o1", "completed", 1, "10.00", line_number=2)),  # o1's second line, shipped later
        on(next_month, line("o3", "completed", 1, "30.00")),
        on(next_month, line("o4", "cancelled", 1, "30.00", country="FR")),  # no row: nothing sold in France
    ])
    monthly = {(r["month"], r["country"]): r.asDict() for r in sales_monthly(facts, batch_id=3).collect()}
    daily = sales_daily(facts, batch_id=3).where("sales_date < '2026-04-01'").collect()

    assert set(monthly) == {(dt.date(2026, 3, 1), "DE"), (next_month, "DE")}
    march = monthly[(dt.date(2026, 3, 1), "DE")]
    assert (march["orders"], march["customers"], march["units"]) == (2, 1, 4)
    assert march["net_sales_reporting"] == Decimal("130.00") == sum(r["net_sales_reporting"] for r in daily)
    # The days alone would count c1 twice and o1 twice: why the month is a table of its own.
    assert (sum(r["customers"] for r in daily), sum(r["orders"] for r in daily)) == (2, 3)

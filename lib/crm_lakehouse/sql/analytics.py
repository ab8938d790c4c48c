"""The ``analytics`` schema: views analysts query, with PII masked.

How each personal column is shown is declared with its table's contract (``pii``) and applied
by sql/masking.py: e-mail becomes ``j***@example.com``, a phone its last four digits, a name its
initial, a birth date its decade, a city appears only where at least k customers live; addresses
are not shown. The ``attributes`` a source declares are shown as
delivered: declare no personal data there. The views read the gold tables by catalog
name (engineer endpoint) or by path (analyst endpoint, whose catalog holds only these views), so
each query sees the tables' newest Delta version. Their columns carry comments: the gold
contracts' for a column taken as it is, the masking rule's for a masked one, this module's for
the computed ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pyspark.sql import SparkSession

from crm_lakehouse.delta_writes import sql_string
from crm_lakehouse.gold.contracts import CUSTOMER_360, FACT_SALES, SALES_DAILY, SALES_MONTHLY
from crm_lakehouse.sql.masking import Projection, project, shared_values_query

SCHEMA = "analytics"
_RAW_TABLE = re.compile(r"\b(gold|silver)\.(\w+)")


# The rows of the customer view. The values a k_anonymous column may show are counted over these
# rows: what the view shows is what must be shared by k. gold.customer_360 carries the profile
# silver holds, so a lookup reads one table.
_CUSTOMERS_SHOWN = "gold.customer_360 c"


def _customer_360(k: int, shared: dict[str, list[str]]) -> tuple[str, dict[str, str]]:
    """gold.customer_360, masked as its contract declares."""
    projection = Projection()
    shown = [c for c in CUSTOMER_360.columns if not c.startswith("_")]
    project(projection, "c", CUSTOMER_360, shown, k=k, shared=shared)
    query = f"SELECT {', '.join(projection.columns)} FROM {_CUSTOMERS_SHOWN}"
    return query, projection.comments


def shared_values(spark: SparkSession, k: int, locate: Callable[[str, str], str] | None = None) -> dict[str, list[str]]:
    """For each k_anonymous column of the customer view, the values at least k of its rows share.
    The endpoint's first query at start: counting also loads the table's Delta snapshot, which an
    analyst's first lookup would otherwise wait for."""
    columns = [column for column, mask in CUSTOMER_360.pii.items() if mask.rule == "k_anonymous"]
    return {column: sorted(row[0] for row in
                           spark.sql(_by_path(shared_values_query(_CUSTOMERS_SHOWN, f"c.{column}", k), locate)).collect())
            for column in columns}


def _by_path(query: str, locate: Callable[[str, str], str] | None) -> str:
    if locate is None:
        return query
    return _RAW_TABLE.sub(lambda m: f"delta.`{locate(m.group(1), m.group(2))}`", query)


_FIXED_VIEWS: dict[str, str] = {
    "fact_sales": """
        SELECT customer_id, source, order_id, line_number, product_id, product_name, category, region, country, channel,
               ordered_at, order_date_utc, order_local_date, status, quantity, currency, net_amount, net_amount_reporting,
               gross_sales_reporting, returns_reporting, net_sales_reporting
        FROM gold.fact_sales""",
    "sales_daily": """
        SELECT sales_date, region, country, channel, category, orders, customers, units, gross_sales_reporting,
               returns_reporting, net_sales_reporting FROM gold.sales_daily""",
    "sales_by_month": """
        SELECT month, region, country, channel, orders, customers, units, gross_sales_reporting, returns_reporting,
               net_sales_reporting
        FROM gold.sales_monthly""",
    "customers_at_risk": """
        SELECT rfm_segment, region, count(*) AS customers,
               sum(CASE WHEN churn_risk_band = 'high' THEN 1 ELSE 0 END) AS high_risk_customers,
               round(avg(churn_probability), 4) AS avg_churn_probability,
               CAST(sum(lifetime_value_reporting * churn_probability) AS DECIMAL(18, 2)) AS value_at_risk_reporting
        FROM gold.customer_360 WHERE customer_status = 'active' GROUP BY rfm_segment, region""",
}
# What the views' columns mean: the gold contract's comment for a column taken as it is, these
# for the masked and computed ones.
_SOURCE_CONTRACT = {"customer_360": CUSTOMER_360, "fact_sales": FACT_SALES, "sales_daily": SALES_DAILY,
                    "sales_by_month": SALES_MONTHLY, "customers_at_risk": CUSTOMER_360}
_OWN_COMMENTS = {
    "customers_at_risk": {
        "customers": "active customers", "high_risk_customers": "active customers in the high churn risk band",
        "avg_churn_probability": "mean churn probability", "value_at_risk_reporting":
            "sum of lifetime value times churn probability, reporting currency",
    },
}
DESCRIPTIONS = {
    "customer_360": "one row per golden customer (gold.customer_360) with PII masked",
    "fact_sales": FACT_SALES.grain, "sales_daily": SALES_DAILY.grain,
    "sales_by_month": "one row per (month, region, country, channel) with sales or returns",
    "customers_at_risk": "one row per (RFM segment, region) of active customers",
}


VIEW_NAMES = ("customer_360", *_FIXED_VIEWS)


def view_queries(k: int, shared: dict[str, list[str]]) -> dict[str, str]:
    """Each view's query; ``k``: a city is shown where at least k customers live (sql.k_anonymity),
    ``shared``: those cities (:func:`shared_values`)."""
    return {"customer_360": _customer_360(k, shared)[0], **_FIXED_VIEWS}


def column_comments(view: str, k: int) -> dict[str, str]:
    masked = _customer_360(k, {"city": []})[1] if view == "customer_360" else {}
    return {**_SOURCE_CONTRACT[view].comments, **_OWN_COMMENTS.get(view, {}), **masked}


# What each view needs to exist first.
REQUIRES = ("gold.customer_360", "gold.fact_sales", "gold.sales_daily", "gold.sales_monthly")


def create_views(spark: SparkSession, k: int, shared: dict[str, list[str]],
                 locate: Callable[[str, str], str] | None = None, only: tuple[str, ...] = VIEW_NAMES) -> list[str]:
    """(Re)create the analytics views (``only`` these); returns their names.

    With ``locate`` (layer, table -> the table's folder) the views read the Delta tables by path
    instead of by catalog name, so a catalog without the raw layers can serve them.
    """
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    names = []
    for name, query in view_queries(k, shared).items():
        if name not in only:
            continue
        query = _by_path(query, locate)
        comments = column_comments(name, k)
        columns = ", ".join(f"`{c}` COMMENT {sql_string(comments.get(c, ''))}" for c in spark.sql(query).columns)
        spark.sql(f"CREATE OR REPLACE VIEW {SCHEMA}.{name} ({columns}) COMMENT {sql_string(DESCRIPTIONS[name])} "
                  f"AS {query}")
        names.append(f"{SCHEMA}.{name}")
    return names


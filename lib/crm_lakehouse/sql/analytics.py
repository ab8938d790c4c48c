"""The ``analytics`` schema: views analysts query, with PII masked.

E-mail becomes ``j***@example.com``, a phone its last four digits, a name its initial, a birth
date its year; addresses are not shown. The ``attributes`` a source declares are shown as
delivered: declare no personal data there. The views read the gold and silver tables by catalog
name (engineer endpoint) or by path (analyst endpoint, whose catalog holds only these views), so
each query sees the tables' newest Delta version. Their columns carry comments: the gold
contracts' for a column taken as it is, this module's for the masked and computed ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pyspark.sql import SparkSession

from crm_lakehouse.delta_writes import sql_string
from crm_lakehouse.gold.contracts import CUSTOMER_360, FACT_SALES, SALES_DAILY

SCHEMA = "analytics"
_RAW_TABLE = re.compile(r"\b(gold|silver)\.(\w+)")


def mask_email(column: str) -> str:
    return (f"CASE WHEN {column} IS NULL THEN NULL "
            f"ELSE concat(substr({column}, 1, 1), '***@', substring_index({column}, '@', -1)) END")


def mask_phone(column: str) -> str:
    return f"CASE WHEN {column} IS NULL THEN NULL ELSE right({column}, 4) END"


def mask_name(column: str) -> str:
    return f"CASE WHEN {column} IS NULL OR {column} = '' THEN NULL ELSE concat(substr({column}, 1, 1), '.') END"


VIEWS: dict[str, str] = {
    "customer_360": f"""
        SELECT c.customer_id, c.customer_status, c.deleted_at, {mask_name('c.full_name')} AS name_initial,
               {mask_email('s.email')} AS email_masked, {mask_phone('s.phone')} AS phone_last4,
               year(s.birth_date) AS birth_year, s.gender, s.city,
               c.country, c.region, c.home_currency, c.source_systems, c.channels, c.first_seen_at,
               c.first_order_date, c.last_order_date, c.orders_count, c.gross_sales_reporting, c.returns_reporting,
               c.lifetime_value_reporting, c.avg_order_value_reporting,
               c.recency_score, c.frequency_score, c.monetary_score, c.rfm_segment, c.interactions_90d,
               c.avg_satisfaction_90d, c.attributes, c.churn_probability, c.churn_risk_band, c.churn_model_version
        FROM gold.customer_360 c LEFT JOIN silver.customers s ON s.customer_id = c.customer_id""",
    "fact_sales": """
        SELECT customer_id, source, order_id, line_number, product_id, product_name, category, region, country, channel,
               ordered_at, order_date_utc, order_local_date, status, quantity, currency, net_amount, net_amount_reporting,
               gross_sales_reporting, returns_reporting, net_sales_reporting
        FROM gold.fact_sales""",
    "sales_daily": """
        SELECT sales_date, region, country, channel, category, orders, customers, units, gross_sales_reporting,
               returns_reporting, net_sales_reporting FROM gold.sales_daily""",
    "sales_by_month": """
        SELECT date_trunc('MONTH', order_local_date) AS month, region, coalesce(country, 'ZZ') AS country, channel,
               count(DISTINCT CASE WHEN quantity > 0 AND status = 'completed' THEN source END,
                              CASE WHEN quantity > 0 AND status = 'completed' THEN order_id END) AS orders,
               count(DISTINCT CASE WHEN quantity > 0 AND status = 'completed' AND customer_id <> 'unknown'
                                   THEN customer_id END) AS customers,
               sum(CASE WHEN (quantity > 0 AND status = 'completed') OR (quantity < 0 AND status <> 'pending')
                        THEN quantity ELSE 0 END) AS units,
               sum(gross_sales_reporting) AS gross_sales_reporting, sum(returns_reporting) AS returns_reporting,
               sum(net_sales_reporting) AS net_sales_reporting
        FROM gold.fact_sales
        GROUP BY date_trunc('MONTH', order_local_date), region, coalesce(country, 'ZZ'), channel""",
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
                    "sales_by_month": FACT_SALES, "customers_at_risk": CUSTOMER_360}
_OWN_COMMENTS = {
    "customer_360": {
        "name_initial": "first letter of the name (masked)", "email_masked": "first letter and domain of the e-mail (masked)",
        "phone_last4": "last four digits of the phone (masked)", "birth_year": "year of birth (masked)",
        "gender": "gender as the sources deliver it", "city": "city of the latest address",
    },
    "sales_by_month": {
        "month": "first day of the month of the local order date", "country": "ISO 3166 country code ('ZZ' when unknown)",
        "orders": "completed sales orders", "customers": "distinct known customers with a completed sale",
        "units": "units sold less units returned",
    },
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


def column_comments(view: str) -> dict[str, str]:
    return {**_SOURCE_CONTRACT[view].comments, **_OWN_COMMENTS.get(view, {})}


# What each view needs to exist first.
REQUIRES = ("gold.customer_360", "gold.fact_sales", "gold.sales_daily", "silver.customers")


def create_views(spark: SparkSession, locate: Callable[[str, str], str] | None = None) -> list[str]:
    """(Re)create every analytics view; returns their names.

    With ``locate`` (layer, table -> the table's folder) the views read the Delta tables by path
    instead of by catalog name, so a catalog without the raw layers can serve them.
    """
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    names = []
    for name, query in VIEWS.items():
        if locate is not None:
            query = _RAW_TABLE.sub(lambda m: f"delta.`{locate(m.group(1), m.group(2))}`", query)
        comments = column_comments(name)
        columns = ", ".join(f"`{c}` COMMENT {sql_string(comments.get(c, ''))}" for c in spark.sql(query).columns)
        spark.sql(f"CREATE OR REPLACE VIEW {SCHEMA}.{name} ({columns}) COMMENT {sql_string(DESCRIPTIONS[name])} "
                  f"AS {query}")
        names.append(f"{SCHEMA}.{name}")
    return names


"""Every silver quality rule by name, for the config to check ``silver.rule_actions`` against."""

from __future__ import annotations

from crm_lakehouse.silver.quality import RECORD_RULES, Expectation


def rule_catalog() -> dict[str, list[Expectation]]:
    """Rule name -> the expectations of that name (one per table that declares it)."""
    from crm_lakehouse.silver.customers import CUSTOMER_RULES
    from crm_lakehouse.silver.interactions import INTERACTION_RULES
    from crm_lakehouse.silver.orders import ORDER_LINE_RULES
    from crm_lakehouse.silver.reference import FX_RATE_RULES, PRODUCT_RULES

    catalog: dict[str, list[Expectation]] = {}
    for rule in (*RECORD_RULES, *CUSTOMER_RULES, *ORDER_LINE_RULES, *INTERACTION_RULES, *PRODUCT_RULES, *FX_RATE_RULES):
        catalog.setdefault(rule.name, []).append(rule)
    return catalog

"""Every silver quality rule by name, and the check of ``silver.rule_actions`` against them.

Config checks an override's action; only silver knows its rules, so the rule names and the
guarded rules (those a table constraint enforces) are checked here, by ``startup.load`` before
any command starts and by ``build_silver`` before it reads anything.
"""

from __future__ import annotations

from crm_lakehouse.config import Settings
from crm_lakehouse.config.checks import did_you_mean
from crm_lakehouse.errors import ConfigError
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


def check_rule_actions(settings: Settings) -> None:
    """Refuse an override of an unknown rule, or ``warn`` for a rule a table constraint enforces
    (the write would fail on the first such row)."""
    catalog = rule_catalog()
    # The same place config names for its own checks: the override may come from the env overlay.
    where = f"{settings.conf_dir / 'base.yaml'} (+ {settings.env}.yaml)"
    for rule, action in settings.silver.rule_actions.items():
        at = f"{where}: silver.rule_actions.{rule}"
        if rule not in catalog:
            raise ConfigError(f"unknown quality rule '{rule}'{did_you_mean(rule, sorted(catalog))}", where=at,
                              fix="name a rule of the silver tables (see docs/configuration.md, 'Quality rules')")
        guarded = [e for e in catalog[rule] if e.guards]
        if action == "warn" and guarded:
            raise ConfigError(f"rule '{rule}' cannot be warn: {guarded[0].guards} rejects every row it catches, so "
                              "the batch could not be written", where=at, fix=guarded[0].fix_hint or "use quarantine or fail")

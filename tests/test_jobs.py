"""Job summaries: the quarantine alarm names the source, the share, the top rules and what they mean."""

from __future__ import annotations

import dataclasses

from crm_lakehouse.jobs import quarantine_alarm


def row(rows_in: int, quarantined: int) -> dict:
    return {"source": "eu_web_orders", "rows_in": rows_in, "quarantined": quarantined}


def test_a_batch_mostly_quarantined_raises_the_alarm_with_its_top_rules_and_a_hint(base_settings):
    rules = {"known_currency": 13117, "parseable_ordered_at": 12, "has_order_id": 3, "currency_code": 1}
    line = quarantine_alarm(base_settings, 0, row(13117, 13117), rules)
    assert line.startswith("source eu_web_orders: batch 0 quarantined 13117 of 13117 rows (100%, more than "
                           "max_quarantined_share 0.5); top rules: known_currency 13117, parseable_ordered_at 12, "
                           "has_order_id 3 — fix: the lines' currency has no rate to USD")
    assert "currency_code" not in line and "\n" not in line


def test_below_the_share_or_with_the_alarm_off_there_is_none(base_settings):
    assert quarantine_alarm(base_settings, 0, row(100, 50), {"known_currency": 50}) is None
    assert quarantine_alarm(base_settings, 0, row(0, 0), {}) is None
    source = dataclasses.replace(base_settings.source("eu_web_orders"), max_quarantined_share=1.0)
    relaxed = dataclasses.replace(base_settings, sources=(source,))
    assert quarantine_alarm(relaxed, 0, row(100, 100), {"known_currency": 100}) is None

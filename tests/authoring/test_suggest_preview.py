"""`source suggest` drafts a source from an export file; reviewed, the draft loads and `source
preview` shows each row's fate, writing nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from crm_lakehouse.authoring.preview import preview
from crm_lakehouse.authoring.suggest import suggest, temporal_pattern
from crm_lakehouse.config import load_settings
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "exports"


def draft(fixture: str, **kwargs) -> dict:
    text = suggest(str(FIXTURES / fixture), **kwargs)
    assert "# review" in text
    return yaml.safe_load(text)


def test_drafts_name_format_encoding_delimiter_patterns_and_mapping():
    shop = draft("online_retail_2010-12.csv")["sources"][0]
    assert (shop["entity"], shop["format"]) == ("orders", "csv")
    assert shop["options"] == {"header": True, "sep": ",", "encoding": "ISO-8859-1"}
    assert shop["timestamp_format"] == "M/d/yyyy H:mm"
    assert shop["mapping"] == {"InvoiceNo": "order_id", "StockCode": "product_id", "Quantity": "quantity",
                               "InvoiceDate": "ordered_at", "UnitPrice": "unit_price", "CustomerID": "source_customer_id",
                               "Country": "country", "line_number": {"generated": "line_in_order"}}
    contacts = draft("contacts_2026-01-01.csv")["sources"][0]
    assert (contacts["entity"], contacts["mode"]) == ("customers", "snapshot")
    assert contacts["mapping"]["full_name"] == {"expr": "concat_ws(' ', `First Name`, `Last Name`)"}
    assert contacts["mapping"]["Record ID"] == "source_customer_id" and contacts["mapping"]["Create Date"] == "signup_at"
    telco = draft("WA_Fn-UseC_-Telco-Customer-Churn_20261130.csv")["sources"][0]
    assert telco["attributes"]["churn"] == {"column": "Churn", "type": "boolean"}
    assert telco["attributes"]["monthly_charges"] == {"column": "MonthlyCharges", "type": "decimal"}
    assert "phone" not in telco["mapping"].values()           # PhoneService is not a phone number
    service = draft("service_contacts_20261130.csv")["sources"][0]
    assert service["options"]["sep"] == ";" and service["mapping"]["name"] == "full_name"
    log = draft("CDNOW_sample.txt", entity="orders")["sources"][0]
    assert (log["format"], log["timestamp_format"], log["columns"]) == ("whitespace", "yyyyMMdd",
                                                                        ["column_1", "column_2", "column_3", "column_4"])


def test_day_first_and_month_first_dates_are_told_apart_by_a_value_above_12():
    assert temporal_pattern(["01/02/2024", "13/02/2024"]) == ("date", "d/M/yyyy")
    assert temporal_pattern(["01/02/2024", "02/13/2024"]) == ("date", "M/d/yyyy")
    assert temporal_pattern(["2024-01-31 09:30:00", "2024-02-01 17:05:59"]) == ("timestamp", "yyyy-MM-dd H:mm:ss")
    assert temporal_pattern(["12/1/2010 8:26", "1/13/2011 10:01"]) == ("timestamp", "M/d/yyyy H:mm")
    assert temporal_pattern(["hello", "12"]) is None


def reviewed(tmp_path: Path, entry: dict, fixture: str, *, region: str = "eu", reporting_currency: str = "USD"):
    """What a data engineer does with a draft: keep it, set the region and folder, save it."""
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    base = (conf / "base.yaml").read_text(encoding="utf-8")
    (conf / "base.yaml").write_text(base.replace("reporting_currency: USD", f"reporting_currency: {reporting_currency}"),
                                    encoding="utf-8")
    entry = {**entry, "path": f"drafts/{entry['name']}"}
    (conf / "sources" / "drafts.yaml").write_text(yaml.safe_dump({"region": region, "sources": [entry]},
                                                                 allow_unicode=True), encoding="utf-8")
    settings = load_settings(conf, lakehouse=str(tmp_path / "lakehouse"))
    folder = Path(settings.landing) / entry["path"]
    folder.mkdir(parents=True)
    shutil.copy(FIXTURES / fixture, folder / fixture)
    return settings


@pytest.mark.e2e  # previews every export fixture through staging and triage
def test_reviewed_drafts_load_and_preview_shows_each_rows_fate_writing_nothing(spark, tmp_path):
    shop = draft("online_retail_2010-12.csv", name="uk_invoices")["sources"][0]
    settings = reviewed(tmp_path / "shop", {**shop, "currency": "GBP", "customers": "inline"}, "online_retail_2010-12.csv",
                        reporting_currency="GBP")
    rows = preview(spark, settings, "uk_invoices", rows=50)
    assert len(rows) == 44
    fates = {(r["order_id"], r["line_number"]): (r["fate"], r["rules"]) for r in rows}
    # The draft has no status: a C-invoice's negative quantity is quarantined until the reviewer
    # maps it as a cancellation; the bad-debt adjustment has a negative price.
    assert fates[("C536379", 1)] == ("quarantined", "positive_quantity")
    assert fates[("A563185", 1)][0] == "quarantined" and "non_negative_unit_price" in fates[("A563185", 1)][1]
    assert fates[("536365", 3)] == ("accepted", "")
    assert sum(f == "accepted" for f, _ in fates.values()) == 44 - 6
    assert not (Path(settings.root) / "bronze").exists() and not (Path(settings.root) / "silver").exists()

    log = draft("CDNOW_sample.txt", entity="orders", name="us_cd_log")["sources"][0]
    log["columns"] = ["customer", "date", "cds", "amount"]
    log["mapping"] = {"customer": "source_customer_id", "date": "ordered_at", "cds": "quantity", "amount": "line_total",
                      "order_id": {"expr": "concat(customer, '-', date)"}, "line_number": {"generated": "line_in_order"},
                      "product_id": {"value": "CD"}}
    settings = reviewed(tmp_path / "log", {**log, "customers": "inline"}, "CDNOW_sample.txt", region="us")
    rows = preview(spark, settings, "us_cd_log", rows=50)
    assert [r["fate"] for r in rows].count("accepted") == 26 and [r["fate"] for r in rows].count("quarantined") == 1
    assert {(r["order_id"], r["line_number"]) for r in rows if r["order_id"] == "00002-19970112"} == \
        {("00002-19970112", 1), ("00002-19970112", 2)}

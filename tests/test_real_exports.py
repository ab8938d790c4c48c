"""Real export shapes flow by YAML alone: the cookbook's YAML (docs/configuration.md, read from the
page itself) over fixtures shaped like public data sets, from landing to gold.

Lakehouse A (reporting in GBP, no FX feed): a web shop's invoice lines (UCI Online Retail shape)
and a CRM's nightly full contact snapshot (HubSpot export shape), delivered over four nights
with changes, a deletion, a comeback and a cut-off export. Lakehouse B (USD): a transaction log
(CDNOW shape) and a customer master with a churn label plus a service desk sharing its numbers
(IBM Telco shape). Gold figures are checked against pandas over the raw files.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pyspark.sql import functions as F

from crm_lakehouse.config import load_settings
from crm_lakehouse.delta_writes import is_delta_table
from crm_lakehouse.jobs import build_gold, build_silver, ingest_bronze
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "exports"
DOC = REPO / "docs" / "configuration.md"
COUNTRY = {"United Kingdom": "GB", "France": "FR", "EIRE": "IE", "RSA": "ZA", "Netherlands": "NL", "Germany": "DE",
           "Australia": "AU", "European Community": "ZZ", "Unspecified": "ZZ", "Channel Islands": "ZZ"}


def cookbook() -> dict[str, str]:
    """The page's YAML blocks by the file their first line names (``# conf/sources/x.yaml``)."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    named = {}
    for block in blocks:
        first = block.splitlines()[0]
        match = re.match(r"# (conf/\S+\.yaml)", first)
        if match:
            named[match.group(1)] = block
    return named


def lakehouse(tmp: Path, sources: list[str], *, base_changes: dict) -> Path:
    """A conf folder with the repository's base.yaml (plus changes) and only the given sources."""
    conf = tmp / "conf"
    shutil.copytree(REPO / "conf", conf)
    for file in (conf / "sources").glob("*.yaml"):
        file.unlink()
    blocks = cookbook()
    for name in sources:
        (conf.parent / name).write_text(blocks[name], encoding="utf-8")
    base = yaml.safe_load((conf / "base.yaml").read_text(encoding="utf-8"))
    for key, value in base_changes.items():
        if isinstance(value, dict):
            base[key] = {**base.get(key, {}), **value}
        else:
            base[key] = value
    (conf / "base.yaml").write_text(yaml.safe_dump(base, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return conf


def deliver(settings, source: str, fixture: str, name: str | None = None) -> None:
    folder = Path(settings.landing) / settings.source(source).path
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / fixture, folder / (name or fixture))


def run_daily(spark, settings) -> dict:
    return {"bronze": ingest_bronze(spark, settings), "silver": build_silver(spark, settings),
            "gold": build_gold(spark, settings)}


def table(spark, settings, layer: str, name: str):
    return spark.read.format("delta").load(settings.table_path(layer, name))


def versions(spark, settings) -> dict[str, int]:
    from crm_lakehouse.batches import table_version

    return {f"{layer}.{name}": table_version(spark, settings.table_path(layer, name))
            for layer, names in (("silver", ("customers", "customers_history", "order_lines", "customer_identity_map")),
                                 ("gold", ("customer_360", "fact_sales", "sales_daily")))
            for name in names}


def money(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


@dataclasses.dataclass
class Shop:
    settings: object
    runs: list
    refused: list[str]


@pytest.fixture(scope="module")
def shop(spark, tmp_path_factory) -> Shop:
    root = tmp_path_factory.mktemp("real_exports_shop")
    base = yaml.safe_load(cookbook()["conf/base.yaml"])
    conf = lakehouse(root, ["conf/sources/uk_shop.yaml", "conf/sources/eu_crm.yaml"], base_changes=base)
    settings = load_settings(conf, env="local", lakehouse=str(root / "lakehouse"))
    runs = []
    deliver(settings, "uk_web_invoice_lines", "online_retail_2010-12.csv")
    deliver(settings, "eu_crm_contacts", "contacts_2026-01-01.csv")
    runs.append(run_daily(spark, settings))                              # night 1
    deliver(settings, "eu_crm_contacts", "contacts_2026-01-02.csv")
    deliver(settings, "eu_crm_contacts", "contacts_2026-01-03.csv")
    runs.append(run_daily(spark, settings))                              # nights 2 and 3 at once
    deliver(settings, "eu_crm_contacts", "contacts_2026-01-04.truncated.csv", "contacts_2026-01-04.csv")
    refused = ingest_bronze(spark, settings).failed                      # night 4: a cut-off export
    deliver(settings, "eu_crm_contacts", "contacts_2026-01-04.csv")      # re-delivered whole, same name
    runs.append(run_daily(spark, settings))
    return Shop(settings, runs, refused)


def test_invoice_lines_give_gold_figures_equal_to_pandas_over_the_raw_file(spark, shop):
    raw = pd.read_csv(FIXTURES / "online_retail_2010-12.csv", encoding="ISO-8859-1", dtype=str, keep_default_na=False)
    raw["amount"] = [Decimal(q) * Decimal(p) for q, p in zip(raw.Quantity, raw.UnitPrice)]
    kept = raw[raw.UnitPrice.map(Decimal) >= 0]                          # "Adjust bad debt" is quarantined
    cancelled = kept.InvoiceNo.str.startswith("C")
    gross = sum(kept[~cancelled].amount, Decimal(0))
    returns = -sum(kept[cancelled].amount, Decimal(0))
    facts = table(spark, shop.settings, "gold", "fact_sales").where("source = 'uk_web_invoice_lines'")
    totals = facts.agg(*[F.sum(c).alias(c) for c in ("gross_sales_reporting", "returns_reporting",
                                                       "net_sales_reporting")]).first()
    assert (totals["gross_sales_reporting"], totals["returns_reporting"], totals["net_sales_reporting"]) == \
        (money(gross), money(returns), money(gross - returns))
    assert facts.count() == len(kept)

    # Revenue per country and month: the invoice's own country, names mapped to ISO codes.
    kept = kept.assign(country=kept.Country.map(COUNTRY),
                       month=pd.to_datetime(kept.InvoiceDate, format="%m/%d/%Y %H:%M").dt.strftime("%Y-%m"),
                       net=[a for a in kept.amount])
    expected = {(r.country, r.month): money(r.net) for r in kept.groupby(["country", "month"], as_index=False)
                .agg(net=("net", lambda s: sum(s, Decimal(0)))).itertuples()}
    daily = table(spark, shop.settings, "gold", "sales_daily").groupBy(
        "country", F.date_format("sales_date", "yyyy-MM").alias("month")).agg(F.sum("net_sales_reporting").alias("net"))
    assert {(r["country"], r["month"]): r["net"] for r in daily.collect()} == expected

    # Every customer number is a customer; guests are the unknown member; no sale loses its customer.
    c360 = table(spark, shop.settings, "gold", "customer_360")
    shop_customers = c360.where(F.array_contains("source_systems", "uk_web_invoice_lines"))
    assert shop_customers.where("customer_status = 'active'").count() == kept[kept.CustomerID != ""].CustomerID.nunique()
    unknown = c360.where("customer_id = 'unknown'").first()
    guests = kept[kept.CustomerID == ""]
    assert unknown["customer_status"] == "unknown" and unknown["lifetime_value_reporting"] == \
        money(sum(guests.amount, Decimal(0)))
    assert facts.join(c360, "customer_id", "left_anti").count() == 0
    assert table(spark, shop.settings, "gold", "fact_sales").join(c360, "customer_id", "left_anti").count() == 0
    # Customers' lifetime value is their net sales.
    by_customer = {cid: money(sum(rows.amount, Decimal(0))) for cid, rows in kept[kept.CustomerID != ""].groupby("CustomerID")}
    identity = table(spark, shop.settings, "silver", "customer_identity_map").where("source = 'uk_web_invoice_lines'")
    ltv = {r["source_customer_id"]: r["lifetime_value_reporting"] for r in
           identity.join(c360, "customer_id").select("source_customer_id", "lifetime_value_reporting").collect()}
    assert ltv == by_customer


def test_bad_invoice_lines_are_quarantined_with_their_rule_and_every_batch_reconciles(spark, shop):
    quarantine = table(spark, shop.settings, "silver", "quarantine").where("source = 'uk_web_invoice_lines'")
    assert [r["broken_rules"] for r in quarantine.collect()] == [["non_negative_unit_price", "has_customer_reference"]]
    log = table(spark, shop.settings, "silver", "run_log")
    assert log.where("rows_in <> accepted + quarantined + duplicates_removed").count() == 0
    bronze_rows = {s.name: table(spark, shop.settings, "bronze", s.name).count() for s in shop.settings.sources}
    logged = {r["source"]: r["n"] for r in log.groupBy("source").agg(F.sum("rows_in").alias("n")).collect()}
    assert logged == bronze_rows


def test_nightly_snapshots_become_scd2_changes_deletes_and_comebacks(spark, shop):
    history = table(spark, shop.settings, "silver", "customers_history").where("source = 'eu_crm_contacts'")
    events = {}
    for r in history.orderBy("sequence_number").collect():
        events.setdefault(r["source_customer_id"], []).append(r["operation"])
    # 104 changed her e-mail on night 2, 102 moved on night 3, 105 vanished on night 2 and came
    # back on night 3, 106 vanished on night 3, 107 is new on night 2; the rest never changed.
    assert events == {"101": ["insert"], "102": ["insert", "update"], "103": ["insert"], "104": ["insert", "update"],
                      "105": ["insert", "delete", "insert"], "106": ["insert", "delete"], "107": ["insert"]}
    current = {r["source_customer_id"]: r for r in history.where("is_current").collect()}
    assert current["104"]["email"] == "chloe.martin@example.com" and current["102"]["city"] == "Liverpool"
    assert current["103"]["country"] == "DE" and current["105"]["phone"] == "+35315550199"
    assert current["103"]["full_name"] == "Lukas Müller"
    # Night 4's whole export repeated night 3: every row a duplicate, nothing written to history.
    [night4] = shop.runs[2]["silver"].rows
    assert (night4["rows_in"], night4["accepted"], night4["duplicates"]) == (6, 0, 6)
    c360 = {r["customer_id"]: r for r in table(spark, shop.settings, "gold", "customer_360").collect()}
    gone = table(spark, shop.settings, "silver", "customer_identity_map").where("source_customer_id = '106'").first()
    deleted = c360[gone["customer_id"]]
    assert deleted["customer_status"] == "deleted" and deleted["deleted_at"] is not None
    assert (deleted["full_name"], deleted["country"]) == (None, None)


def test_a_cut_off_snapshot_is_refused_in_one_line_and_the_whole_one_accepted(spark, shop):
    [line] = shop.refused
    assert "refuses contacts_2026-01-04.csv: a full snapshot with 2 records where the one before had 6" in line
    assert "overwrite the file, same name" in line and "\n" not in line
    assert shop.runs[2]["bronze"].ok


def test_a_rerun_with_nothing_new_changes_no_table(spark, shop):
    before = versions(spark, shop.settings)
    again = run_daily(spark, shop.settings)
    assert again["silver"].rows[0]["source"] == "(bronze has nothing new)"
    assert again["gold"].rows[0]["as_of_date"] == "(silver has not changed)"
    assert versions(spark, shop.settings) == before


@dataclasses.dataclass
class Telco:
    settings: object
    run: dict


@pytest.fixture(scope="module")
def telco(spark, tmp_path_factory) -> Telco:
    root = tmp_path_factory.mktemp("real_exports_telco")
    # Gold without deletion vectors, so delta-rs (the `deltalake` package) can read it (analysts.md).
    conf = lakehouse(root, ["conf/sources/cdnow.yaml", "conf/sources/telco.yaml"],
                     base_changes={"gold": {"deletion_vectors": False}})
    settings = load_settings(conf, env="local", lakehouse=str(root / "lakehouse"))
    deliver(settings, "us_web_cd_purchases", "CDNOW_sample.txt")
    deliver(settings, "us_telco_billing_customers", "WA_Fn-UseC_-Telco-Customer-Churn_20261130.csv")
    deliver(settings, "us_telco_service_contacts", "service_contacts_20261130.csv")
    return Telco(settings, run_daily(spark, settings))


def test_a_transaction_log_gives_customers_and_revenue_equal_to_pandas(spark, telco):
    raw = pd.read_csv(FIXTURES / "CDNOW_sample.txt", sep=r"\s+", header=None, names=["customer", "date", "cds", "amount"],
                      dtype=str)
    kept = raw.dropna()                                                  # the cut-off line is quarantined
    facts = table(spark, telco.settings, "gold", "fact_sales")
    assert facts.count() == len(kept)
    assert facts.agg(F.sum("net_sales_reporting")).first()[0] == money(sum(map(Decimal, kept.amount), Decimal(0)))
    monthly = {m: money(sum(map(Decimal, rows.amount), Decimal(0))) for m, rows in kept.groupby(kept.date.str[:6])}
    daily = table(spark, telco.settings, "gold", "sales_daily").groupBy(F.date_format("sales_date", "yyyyMM").alias("m")) \
        .agg(F.sum("net_sales_reporting").alias("net"))
    assert {r["m"]: r["net"] for r in daily.collect()} == monthly
    # The dashboard's months: revenue and buyers per month, a buyer counted once however many days.
    buyers = kept.groupby(kept.date.str[:6]).customer.nunique()
    months = table(spark, telco.settings, "gold", "sales_monthly").groupBy(F.date_format("month", "yyyyMM").alias("m")) \
        .agg(F.sum("net_sales_reporting").alias("net"), F.sum("customers").alias("buyers"))
    assert {r["m"]: (r["net"], r["buyers"]) for r in months.collect()} == {m: (net, buyers[m]) for m, net in monthly.items()}
    orders = table(spark, telco.settings, "silver", "orders")
    assert orders.count() == kept.groupby(["customer", "date"]).ngroups   # one order per customer and day
    c360 = table(spark, telco.settings, "gold", "customer_360").where(
        F.array_contains("source_systems", "us_web_cd_purchases"))
    assert c360.count() == kept.customer.nunique()
    assert c360.agg(F.sum("orders_count")).first()[0] == orders.count()
    [bad] = table(spark, telco.settings, "silver", "quarantine").where("source = 'us_web_cd_purchases'").collect()
    assert "parseable_record" in bad["broken_rules"] and bad["raw_record"].strip() == "00011 1997010"


def test_a_customer_master_with_a_churn_label_reaches_customer_360_with_its_attributes(spark, telco):
    billing = pd.read_csv(FIXTURES / "WA_Fn-UseC_-Telco-Customer-Churn_20261130.csv", dtype=str)
    service = pd.read_csv(FIXTURES / "service_contacts_20261130.csv", sep=";", dtype=str)
    c360 = table(spark, telco.settings, "gold", "customer_360").where(
        F.array_contains("source_systems", "us_telco_billing_customers"))
    # Billing and service share customer numbers: one golden customer per number.
    assert c360.count() == billing.customerID.nunique()
    identity = table(spark, telco.settings, "silver", "customer_identity_map")
    per_number = identity.where(F.col("source").startswith("us_telco")).groupBy("source_customer_id") \
        .agg(F.countDistinct("customer_id").alias("ids"))
    assert per_number.where("ids > 1").count() == 0
    rows = {r["customer_id"]: r for r in c360.collect()}
    number = {r["customer_id"]: r["source_customer_id"] for r in identity.where("source = 'us_telco_billing_customers'").collect()}
    by_number = {number[cid]: row for cid, row in rows.items()}
    for record in billing.itertuples():
        attributes = by_number[record.customerID]["attributes"]
        assert attributes["churned"] == ("true" if record.Churn == "Yes" else "false")
        assert attributes["contract"] == record.Contract
        assert Decimal(attributes["monthly_charges"]) == Decimal(record.MonthlyCharges)
        assert ("total_charges" in attributes) == bool(record.TotalCharges.strip())   # blank: no value
        assert attributes["senior_citizen"] == ("true" if record.SeniorCitizen == "1" else "false")
    for record in service.itertuples():
        assert by_number[record.customer_no]["full_name"] == record.name
    # Without orders, first seen is the export date (from the file name), not the ingest clock.
    assert {str(r["first_seen_at"].date()) for r in rows.values()} == {"2026-11-30"}


def test_gold_without_deletion_vectors_reads_with_deltalake_as_with_spark(spark, telco):
    from deltalake import DeltaTable

    for name, key in (("customer_360", ["customer_id"]), ("fact_sales", ["source", "order_id", "line_number"]),
                      ("sales_daily", ["sales_date", "region", "country", "channel", "category"])):
        path = telco.settings.table_path("gold", name)
        outside = DeltaTable(path).to_pandas().sort_values(key).reset_index(drop=True)
        inside = table(spark, telco.settings, "gold", name).toPandas().sort_values(key).reset_index(drop=True)
        assert len(outside) == len(inside) > 0
        assert outside[key].astype(str).values.tolist() == inside[key].astype(str).values.tolist()
        money_column = next(c for c in inside.columns if c.endswith("_reporting"))
        assert [Decimal(str(v)) for v in outside[money_column]] == [Decimal(str(v)) for v in inside[money_column]]
    assert is_delta_table(spark, telco.settings.table_path("gold", "customer_360"))

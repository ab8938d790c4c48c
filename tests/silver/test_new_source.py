"""A new region and source need configuration only: a region entry and a source YAML, no code."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil

import pytest
import yaml

from crm_lakehouse.bronze.ingest import ingest_all
from crm_lakehouse.config import load_settings
from crm_lakehouse.silver.build import build_silver
from crm_lakehouse.silver.contracts import CUSTOMERS, CUSTOMERS_HISTORY, table_path
from tests.conftest import REPO

JAPAN_STORE_CRM = """
# A Japanese store CRM: Japanese headers, era-free dates written with 年月日, local time in JST.
region: jp
defaults: {timezone: Asia/Tokyo, currency: JPY, phone_country: JP}
sources:
  - name: jp_store_customers
    channel: store
    entity: customers
    format: csv
    path: jp/store/customers
    options: {header: true, encoding: UTF-8, sep: ","}
    date_format: "yyyy'年'MM'月'dd'日'"
    timestamp_format: yyyy/MM/dd HH:mm
    columns: [会員番号, 氏名, 電話番号, メール, 生年月日, 国, 登録日時, 更新日時, 区分, 連番]
    mapping:
      会員番号: source_customer_id
      氏名: full_name
      電話番号: phone
      メール: email
      生年月日: birth_date
      国: country
      登録日時: signup_at
      更新日時: updated_at
      区分: operation
      連番: sequence_number
    cdc:
      operation_column: 区分
      sequence_column: 連番
      operations: {insert: 新規, update: 更新, delete: 削除}
"""

EXPORT = """会員番号,氏名,電話番号,メール,生年月日,国,登録日時,更新日時,区分,連番
J001,山田　太郎,090-1234-5678,Taro.Yamada@Example.JP,1980年04月01日,JP,2026/01/01 09:30,2026/01/01 09:30,新規,1
J002,ＳＡＴＯ　ＨＡＮＡ,+81 80 1111 2222,hana@example.jp,1990年12月24日,JP,2026/01/01 10:00,2026/01/01 10:00,新規,1
J003,山田太郎,09012345678,,1980年04月01日,JP,2026/01/01 11:00,2026/01/01 11:00,新規,1
J002,,,,,,,2026/01/02 08:00,削除,2
"""


@pytest.mark.e2e  # bronze and silver over a landing folder
def test_a_new_region_and_source_from_yaml_flow_into_silver(spark, tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    base = yaml.safe_load((conf / "base.yaml").read_text(encoding="utf-8"))
    base["regions"]["jp"] = {"timezone": "Asia/Tokyo", "currency": "JPY", "phone_country": "JP", "countries": ["JP"],
                             "locale": "ja_JP"}
    (conf / "base.yaml").write_text(yaml.safe_dump(base, allow_unicode=True), encoding="utf-8")
    (conf / "sources" / "jp.yaml").write_text(JAPAN_STORE_CRM, encoding="utf-8")
    landing = tmp_path / "lakehouse" / "landing" / "jp" / "store" / "customers"
    landing.mkdir(parents=True)
    (landing / "members_20260102.csv").write_text(EXPORT, encoding="utf-8")

    settings = load_settings(conf, env="local", lakehouse=str(tmp_path / "lakehouse"))
    # Only the new source has files here; the others are configured but not run.
    settings = dataclasses.replace(settings, sources=(settings.source("jp_store_customers"),))
    ingest_all(spark, settings)
    [batch] = build_silver(spark, settings)
    assert [(r["rows_in"], r["accepted"], r["quarantined"], r["duplicates_removed"]) for r in batch.reconciliation] == \
        [(4, 4, 0, 0)]

    [customer] = spark.read.format("delta").load(table_path(settings, CUSTOMERS)).collect()
    # J001 and J003 share the phone (written two ways) and name + birth date: one person.
    assert (customer["full_name"], customer["email"], customer["phone"], customer["country"]) == \
        ("山田太郎", "taro.yamada@example.jp", "+819012345678", "JP")
    assert (customer["region"], customer["home_currency"], customer["record_count"]) == ("jp", "JPY", 2)
    assert customer["birth_date"] == dt.date(1980, 4, 1)
    assert customer["first_seen_at"] == dt.datetime(2026, 1, 1, 0, 30)   # 09:30 in Tokyo, stored in UTC
    history = spark.read.format("delta").load(table_path(settings, CUSTOMERS_HISTORY))
    hana = {r["operation"]: r for r in history.where("source_customer_id = 'J002'").collect()}
    assert hana["insert"]["full_name"] == "Sato Hana"                     # full-width, shouting -> NFKC, cased
    assert hana["insert"]["valid_to"] == dt.datetime(2026, 1, 1, 23, 0) and not hana["insert"]["is_current"]

"""Typing errors in the generator: a typo-rich export differs from the clean export of the same
seed exactly in the records and fields the manifest counts, and the people stay the same."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from crm_lakehouse.bronze.ingest import CORRUPT_RECORD
from crm_lakehouse.generator import generate, make_plan, read_manifest
from crm_lakehouse.generator.typos import NAME_DEFECTS, TYPO_DEFECTS
from tests.generator.test_generator import parsed

SCALE = 0.002
DAMAGED = {"full_name": NAME_DEFECTS, "birth_date": ("birth_date_typo", "missing_birth_date"),
           "phone": ("phone_typo",), "address": ("address_typo", "missing_address"), "city": ("city_typo",)}


def _export(spark, settings, out, rates):
    generator = dataclasses.replace(settings.generator, defect_rates=rates)
    generate(spark, make_plan(dataclasses.replace(settings, generator=generator), scale=SCALE), str(out), [0])
    return out


@dataclasses.dataclass(frozen=True)
class Exports:
    without_typos: Path
    with_typos: Path


@pytest.fixture(scope="module")
def typo_exports(spark, base_settings, tmp_path_factory) -> Exports:
    """Day 0 of one seed twice, without and with typing errors; half the Chinese customers who
    are abroad written in pinyin in both. No lost keys, so every record of one export finds itself
    in the other; no copies, replays, broken lines or name variants, so each delivered record is
    one manifest event and a pinyin name is exactly the transliteration."""
    clean = {**base_settings.generator.defect_rates, "cross_script": 0.5, "missing_key": 0.0, "exact_duplicate": 0.0,
             "replayed_event": 0.0, "malformed_line": 0.0, "name_variant": 0.0}
    folder = tmp_path_factory.mktemp("typo_exports")
    return Exports(without_typos=_export(spark, base_settings, folder / "clean", clean),
                   with_typos=_export(spark, base_settings, folder / "typos",
                                      {**clean, **dict.fromkeys(TYPO_DEFECTS, 0.08)}))


def test_typos_change_exactly_the_fields_and_records_the_manifest_counts(spark, base_settings, typo_exports):
    clean, typed = typo_exports.without_typos, typo_exports.with_typos
    manifest = read_manifest(spark, str(typed), 0)["sources"]
    totals = dict.fromkeys(TYPO_DEFECTS, 0)
    for source in [s for s in base_settings.sources if s.entity == "customers"]:
        def rows(folder):
            df = parsed(spark, folder, source, 0)
            if CORRUPT_RECORD in df.columns:
                df = df.where(F.col(CORRUPT_RECORD).isNull()).drop(CORRUPT_RECORD)
            return df.distinct()

        damaged_columns = {field: source.column_for(field) for field in DAMAGED if source.column_for(field)}
        same = [c for c in rows(clean).columns if c not in damaged_columns.values()]
        joined = rows(clean).alias("c").join(rows(typed).alias("t"), [F.col(f"c.`{c}`").eqNullSafe(F.col(f"t.`{c}`"))
                                                                       for c in same])
        assert joined.count() == rows(clean).count() == rows(typed).count(), source.name
        defects = manifest[source.name]["defects"]
        for field, column in damaged_columns.items():
            differ = joined.where(~F.col(f"c.`{column}`").eqNullSafe(F.col(f"t.`{column}`"))).count()
            assert differ == sum(defects[d] for d in DAMAGED[field]), f"{source.name}.{column}"
        for defect in TYPO_DEFECTS:
            totals[defect] += defects[defect]
    assert all(count > 0 for count in totals.values()), totals  # every kind of error was injected somewhere


def test_a_chinese_customer_abroad_is_written_in_the_pinyin_the_linker_reads(spark, base_settings, typo_exports):
    from crm_lakehouse.generator import GROUND_TRUTH_DIR
    from crm_lakehouse.silver.linkage_fields import latin_name_key

    out = typo_exports.without_typos
    truth = spark.read.parquet(str(out / GROUND_TRUTH_DIR / "customer_records"))
    people = {r.person_id: r.full_name for r in spark.read.parquet(str(out / GROUND_TRUTH_DIR / "people")).collect()}
    abroad = {(r.source, r.source_customer_id): r.person_id for r in truth.where("cross_script").collect()}
    sources = {s.name: s for s in base_settings.sources if s.entity == "customers"}
    assert abroad and all(sources[source].region != "cn" for source, _ in abroad)
    manifest = read_manifest(spark, str(out), 0)["sources"]
    checked = 0
    for name, source in sources.items():
        key, full_name, city = (source.column_for(f) for f in ("source_customer_id", "full_name", "city"))
        rows = [r for r in parsed(spark, out, source, 0).select(key, full_name, city).collect()
                if (name, r[key]) in abroad and r[full_name] is not None]
        assert len(rows) == manifest[name]["defects"]["cross_script"], name
        for row in rows:
            characters = people[abroad[(name, row[key])]]
            assert not any("\u3400" <= c <= "\u9fff" for c in row[full_name] + (row[city] or "")), row
            # 王秀英 abroad is "Xiuying Wang": the same words as the linker's pinyin of the characters.
            assert " ".join(sorted(row[full_name].lower().split())) == latin_name_key(f"{characters[0]} {characters[1:]}")
            checked += 1
    assert checked == sum(manifest[name]["defects"]["cross_script"] for name in sources) > 0


def test_with_one_region_a_chinese_customer_has_nowhere_else_to_be(spark, base_settings):
    from crm_lakehouse.generator.population import people, registrations

    cn_only = dataclasses.replace(base_settings, sources=[s for s in base_settings.sources if s.region == "cn"],
                                  generator=dataclasses.replace(base_settings.generator, defect_rates={"cross_script": 1.0}))
    plan = make_plan(cn_only, scale=SCALE)
    records = registrations(people(spark, plan), plan)
    assert records.where("cross_script").count() == 0 and records.count() >= plan.people

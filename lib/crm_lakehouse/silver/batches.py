"""Silver batches: which bronze versions a batch consumes, written down before anything is written.

A batch is a pure function of its plan: the bronze version range per source (read through
Delta's Change Data Feed) and the version of every silver table before the batch (read with
time travel). The plan is saved first; every table write of the batch carries Delta's
idempotency pair (app id ``crm-lakehouse:silver``, version = batch id); the run-log row is
written last and marks the batch done. After a crash the unfinished plan is run again: tables it
already committed skip their write, the others are computed from the same inputs as before.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from crm_lakehouse import storage
from crm_lakehouse.config import Settings, SourceConfig, join_path

APP_ID = "crm-lakehouse:silver"
CDF_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")


@dataclass(frozen=True)
class BatchPlan:
    """What one silver batch reads: bronze (from, to) versions per source, silver versions before it."""

    batch_id: int
    bronze: dict[str, tuple[int, int]]
    consumed: dict[str, int]
    silver_versions: dict[str, int]
    resumed: bool = False  # saved by an earlier run that did not finish it

    def to_json(self) -> str:
        return json.dumps({"batch_id": self.batch_id, "bronze": self.bronze, "consumed": self.consumed,
                           "silver_versions": self.silver_versions}, sort_keys=True, indent=1)

    @staticmethod
    def from_json(text: str) -> BatchPlan:
        raw = json.loads(text)
        return BatchPlan(batch_id=int(raw["batch_id"]), bronze={k: (int(a), int(b)) for k, (a, b) in raw["bronze"].items()},
                         consumed={k: int(v) for k, v in raw["consumed"].items()},
                         silver_versions={k: int(v) for k, v in raw["silver_versions"].items()})


def plans_folder(settings: Settings) -> str:
    return join_path(settings.checkpoints, "silver", "batches")


def table_version(spark: SparkSession, path: str) -> int:
    """The table's latest version, or -1 when there is no table yet.

    Read from the names of the commit files (``_delta_log/<version>.json``, the Delta protocol's
    layout; the newest is never cleaned up), which needs no Spark job.
    """
    log_dir = join_path(path, "_delta_log")
    if not storage.exists(spark, log_dir):
        return -1
    versions = [int(name.rsplit("/", 1)[-1][:-5]) for name in storage.list_files(spark, log_dir)
                if re.fullmatch(r"\d{20}\.json", name.rsplit("/", 1)[-1])]
    return max(versions, default=-1)


def next_plan(spark: SparkSession, settings: Settings, *, silver_paths: dict[str, str], finished: set[int]) -> BatchPlan | None:
    """The unfinished plan to resume, else a new plan over what bronze gained, else None."""
    folder = plans_folder(settings)
    saved = sorted(int(name.rsplit("/", 1)[-1].split(".")[0]) for name in storage.list_files(spark, folder)
                   if name.endswith(".json")) if storage.exists(spark, folder) else []
    if saved and saved[-1] not in finished:
        unfinished = BatchPlan.from_json(storage.read_text(spark, join_path(folder, f"{saved[-1]}.json")))
        return BatchPlan(unfinished.batch_id, unfinished.bronze, unfinished.consumed, unfinished.silver_versions,
                         resumed=True)
    consumed = BatchPlan.from_json(storage.read_text(spark, join_path(folder, f"{saved[-1]}.json"))).consumed if saved else {}
    bronze: dict[str, tuple[int, int]] = {}
    now_consumed = dict(consumed)
    for source in settings.sources:
        latest = table_version(spark, settings.table_path("bronze", source.name))
        start = consumed.get(source.name, -1) + 1
        if latest >= start:
            bronze[source.name] = (start, latest)
            now_consumed[source.name] = latest
    if not bronze:
        return None
    plan = BatchPlan(batch_id=(saved[-1] + 1) if saved else 0, bronze=bronze, consumed=now_consumed,
                     silver_versions={name: table_version(spark, path) for name, path in silver_paths.items()})
    storage.write_text(spark, join_path(folder, f"{plan.batch_id}.json"), plan.to_json())
    return plan


def read_new_bronze(spark: SparkSession, settings: Settings, source: SourceConfig, versions: tuple[int, int]) -> DataFrame:
    """The rows bronze appended between the two versions (inclusive), through Change Data Feed."""
    start, end = versions
    df = (spark.read.format("delta").option("readChangeFeed", "true")
          .option("startingVersion", start).option("endingVersion", end)
          .load(settings.table_path("bronze", source.name)))
    return df.where(F.col("_change_type") == "insert").drop(*CDF_COLUMNS)


def read_before(spark: SparkSession, path: str, version: int, schema) -> DataFrame:
    """A silver table as it was before the batch (empty with the contract schema if it did not exist)."""
    if version < 0:
        return spark.createDataFrame([], schema)
    return spark.read.format("delta").option("versionAsOf", version).load(path)

"""The weekly ``maintain`` job: compact every Delta table and remove the files it no longer needs.

OPTIMIZE co-locates rows by each table's liquid clustering keys (chosen in the layer contracts:
customer_id for the customer marts, date and region for the sales marts) and merges the small
files that daily MERGEs leave behind. VACUUM then deletes files that left the table more than
``maintenance.vacuum_retention_hours`` ago (set as each table's
delta.deletedFileRetentionDuration); time travel to older versions is no longer possible.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from crm_lakehouse import storage
from crm_lakehouse.catalog import LAYERS
from crm_lakehouse.config import Settings, join_path


@dataclass
class Maintained:
    table: str
    files_removed: int
    files_added: int
    files_vacuumed: int
    seconds: float


def lakehouse_tables(spark: SparkSession, settings: Settings) -> list[tuple[str, str]]:
    """(``layer.table``, path) of every Delta table under the lakehouse root."""
    found = []
    for layer in LAYERS:
        layer_path = join_path(settings.root, layer)
        for name in storage.list_dirs(spark, layer_path):
            path = join_path(layer_path, name)
            if storage.exists(spark, join_path(path, "_delta_log")):
                found.append((f"{layer}.{name}", path))
    return found


def maintain(spark: SparkSession, settings: Settings) -> list[Maintained]:
    results = []
    for name, path in lakehouse_tables(spark, settings):
        started = time.monotonic()
        table = DeltaTable.forPath(spark, path)
        metrics = table.optimize().executeCompaction().select("metrics").first()["metrics"]
        _set_retention(spark, table, path, settings.maintenance.vacuum_retention_hours)
        table.vacuum()
        # Delta logs VACUUM as commits; the END commit counts the files it deleted.
        vacuum_end = table.history(1).select("operation", "operationMetrics").first()
        expired = int(vacuum_end["operationMetrics"].get("numDeletedFiles", 0)) if vacuum_end["operation"] == "VACUUM END" else 0
        results.append(Maintained(table=name, files_removed=int(metrics["numFilesRemoved"]),
                                  files_added=int(metrics["numFilesAdded"]),
                                  files_vacuumed=expired,
                                  seconds=time.monotonic() - started))
    return results


def _set_retention(spark: SparkSession, table: DeltaTable, path: str, hours: float) -> None:
    """Delta 4 takes VACUUM's retention from the table property (a RETAIN argument is ignored);
    set it only when it differs, so a weekly run adds no commit to an already-set table."""
    wanted = f"interval {hours:g} hours"
    if table.detail().first()["properties"].get("delta.deletedFileRetentionDuration") != wanted:
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('delta.deletedFileRetentionDuration' = '{wanted}')")

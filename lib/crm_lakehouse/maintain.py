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


@dataclass
class Restored:
    table: str
    from_version: int
    to_version: int
    new_version: int
    files_removed: int
    files_restored: int


def restore_table(spark: SparkSession, settings: Settings, name: str, version: int) -> Restored:
    """Bring ``layer.table`` back to its state at ``version`` (Delta RESTORE, itself a new version,
    so the mistake stays in the history and the restore can be undone the same way)."""
    from crm_lakehouse.errors import ConfigError

    tables = dict(lakehouse_tables(spark, settings))
    if name not in tables:
        from crm_lakehouse.config.checks import did_you_mean

        raise ConfigError(f"no Delta table '{name}' in the lakehouse{did_you_mean(name, list(tables))}",
                          where=settings.root, fix=f"name one of: {', '.join(tables) or '(none yet)'}")
    table = DeltaTable.forPath(spark, tables[name])
    history = table.history().select("version", "operation").collect()
    current = max(row["version"] for row in history)
    # Time travel needs the version's log entry and its data files; VACUUM removes the latter.
    reachable = sorted(row["version"] for row in history)
    if version not in reachable or version >= current:
        raise ConfigError(f"{name} has no earlier version {version} to restore (current version {current}, "
                          f"history {reachable[0]}..{current})", where=tables[name],
                          fix=f"give --version between {reachable[0]} and {current - 1} "
                              f"(DESCRIBE HISTORY shows what each did)")
    try:
        metrics = table.restoreToVersion(version).first().asDict()
    except Exception as error:  # files already vacuumed: Delta names the missing file
        if "FileNotFound" in str(error) or "does not exist" in str(error):
            raise ConfigError(f"{name} version {version} can no longer be restored: its files were vacuumed",
                              where=tables[name],
                              fix=f"restore a version newer than maintenance.vacuum_retention_hours "
                                  f"({settings.maintenance.vacuum_retention_hours:g} h)") from None
        raise
    return Restored(table=name, from_version=current, to_version=version, new_version=current + 1,
                    files_removed=int(metrics.get("num_removed_files", 0)),
                    files_restored=int(metrics.get("num_restored_files", 0)))

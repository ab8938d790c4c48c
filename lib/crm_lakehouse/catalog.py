"""Register the lakehouse's Delta directories in the session catalog as ``<layer>.<table>``.

The Delta directory at ``<root>/<layer>/<table>`` is the table; the catalog entry is a name for
it. Registering by location lets every process (jobs, notebooks, the SQL endpoint) see the same
tables without sharing a metastore, and a table written by another process is seen at its
newest version on the next query.
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from crm_lakehouse import storage
from crm_lakehouse.config import Settings, join_path

# audit: records of what was done to the data (erasures), without the data itself.
LAYERS = ("bronze", "silver", "gold", "audit")


def ensure_schema(spark: SparkSession, layer: str) -> None:
    """The catalog schema a layer's tables register into."""
    if not spark.catalog.databaseExists(layer):
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {layer}")


def register_table(spark: SparkSession, layer: str, table: str, path: str) -> None:
    ensure_schema(spark, layer)
    spark.sql(f"CREATE TABLE IF NOT EXISTS {layer}.{table} USING delta LOCATION '{_quote(path)}'")


def register_all(spark: SparkSession, settings: Settings) -> list[str]:
    """Register every Delta table found under the lakehouse root; return their names."""
    names = []
    for layer in LAYERS:
        layer_path = join_path(settings.root, layer)
        for table in _delta_tables(spark, layer_path):
            register_table(spark, layer, table, join_path(layer_path, table))
            names.append(f"{layer}.{table}")
    return names


def _delta_tables(spark: SparkSession, layer_path: str) -> list[str]:
    return [name for name in storage.list_dirs(spark, layer_path)
            if storage.exists(spark, join_path(layer_path, name, "_delta_log"))]


def _quote(path: str) -> str:
    return path.replace("\\", "\\\\").replace("'", "\\'")

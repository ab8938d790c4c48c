"""The analysts' sandbox schemas (dbt's target), kept across endpoint restarts.

The endpoint's catalog lives in its process; its warehouse folder, ``<root>/sql_warehouse``,
holds what must outlive it. A sandbox schema is the folder ``<schema>.db`` there, each of its
Delta tables a folder inside it, and each of its views a file ``_crm_views/<view>.json`` that
the endpoint's ``SandboxCatalog`` listener writes when the view is created and deletes with it.
At start the endpoint registers what it finds: schemas, then tables, then views, a view whose
body names a view not yet created being retried after the others. Only at start: a periodic
pass would race with the statements that create and drop these objects (a table folder whose
first commit is being written, a view file its listener has not deleted yet), so an object
that another endpoint creates appears here at the next restart.
"""

from __future__ import annotations

import json
import logging

from pyspark.errors import PySparkException
from pyspark.sql import SparkSession

from crm_lakehouse import storage
from crm_lakehouse.catalog import register_table
from crm_lakehouse.config import Settings, join_path
from crm_lakehouse.delta_writes import sql_string

VIEWS_FOLDER = "_crm_views"  # SandboxCatalog.VIEWS_FOLDER
PREFIX_CONF = "spark.crm.sql.sandboxPrefix"  # Sandbox.PREFIX_KEY
LISTENER_CLASS = "crm.sql.SandboxCatalog"

log = logging.getLogger(__name__)


def warehouse(settings: Settings) -> str:
    return join_path(settings.root, "sql_warehouse")


def restore(spark: SparkSession, settings: Settings) -> list[str]:
    """Register every sandbox schema, table and view found in the warehouse; return their names.

    What cannot be registered (a view whose body reads what this endpoint does not serve, a
    table folder without a commit) is logged and left out; the endpoint serves the rest.
    """
    folder = warehouse(settings)
    restored: list[str] = []
    views: list[dict] = []
    for entry in storage.list_dirs(spark, folder):
        schema = entry.removesuffix(".db")
        if not entry.endswith(".db") or not schema.startswith(settings.sql.sandbox_prefix):
            continue
        schema_folder = join_path(folder, entry)
        if not spark.catalog.databaseExists(schema):
            spark.sql(f"CREATE SCHEMA IF NOT EXISTS `{schema}`")
            restored.append(schema)
        known = {table.name for table in spark.catalog.listTables(schema)}
        for table in storage.list_dirs(spark, schema_folder):
            if table not in known and storage.exists(spark, join_path(schema_folder, table, "_delta_log")):
                try:
                    register_table(spark, schema, table, join_path(schema_folder, table))
                    restored.append(f"{schema}.{table}")
                except PySparkException as error:
                    log.warning("sandbox table %s.%s was not restored: %s", schema, table, str(error).splitlines()[0])
        for file in storage.list_files(spark, join_path(schema_folder, VIEWS_FOLDER)):
            if file.endswith(".json") and file.removesuffix(".json") not in known:
                views.append(json.loads(storage.read_text(spark, join_path(schema_folder, VIEWS_FOLDER, file))))
    return restored + _create_views(spark, sorted(views, key=lambda view: view["created_ms"]))


def _create_views(spark: SparkSession, views: list[dict]) -> list[str]:
    """Create the views, retrying those that failed while another one they read was still missing."""
    created: list[str] = []
    pending = views
    while pending:
        failed = []
        for view in pending:
            try:
                _create_view(spark, view)
                created.append(f"{view['schema']}.{view['name']}")
            except PySparkException as error:
                failed.append((view, error))
        if len(failed) == len(pending):
            for view, error in failed:
                log.warning("sandbox view %s.%s was not restored: %s", view["schema"], view["name"],
                            str(error).splitlines()[0])
            break
        pending = [view for view, _ in failed]
    return created


def _create_view(spark: SparkSession, view: dict) -> None:
    columns = ", ".join(f"`{c['name']}`" + (f" COMMENT {sql_string(c['comment'])}" if c.get("comment") else "")
                        for c in view["columns"])
    comment = f" COMMENT {sql_string(view['comment'])}" if view.get("comment") else ""
    current = spark.catalog.currentDatabase()
    namespace = view.get("namespace") or []
    # The body was written against the namespace current at its creation (dbt qualifies names anyway).
    if len(namespace) == 2 and spark.catalog.databaseExists(namespace[1]):
        spark.catalog.setCurrentDatabase(namespace[1])
    try:
        spark.sql(f"CREATE OR REPLACE VIEW `{view['schema']}`.`{view['name']}` ({columns}){comment} AS {view['sql']}")
    finally:
        spark.catalog.setCurrentDatabase(current)

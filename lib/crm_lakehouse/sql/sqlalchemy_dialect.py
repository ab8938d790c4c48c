"""A SQLAlchemy dialect for the SQL endpoint: PyHive's Hive dialect with Spark's SHOW TABLES.

Spark answers ``SHOW TABLES`` with (namespace, tableName, isTemporary); PyHive's dialect reads
the first column, so reflection listed the schema's name once per table and
``pandas.read_sql_table`` failed. Registered as ``crm_spark://`` (an entry point of this
package), so ``create_engine("crm_spark://ana:…@host:10000/analytics", connect_args={"auth":
"CUSTOM"})`` works where the package is installed; docs/analysts.md gives the class to copy
where it is not. Imports PyHive only, not Spark.
"""

from __future__ import annotations

from pyhive.sqlalchemy_hive import HiveDialect
from sqlalchemy import text


class SparkThriftDialect(HiveDialect):
    name = "crm_spark"
    supports_statement_cache = False

    def get_table_names(self, connection, schema=None, **kw):
        query = "SHOW TABLES" + (f" IN {self.identifier_preparer.quote_identifier(schema)}" if schema else "")
        return [row[1] for row in connection.execute(text(query))]

    def get_view_names(self, connection, schema=None, **kw):
        # SHOW TABLES lists views too: answering them here as well would reflect each twice.
        return []

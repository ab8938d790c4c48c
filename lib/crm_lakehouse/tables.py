"""Table contracts shared by the silver and gold layers: schema, grain, key, constraints, layout.

Writers select exactly a contract's columns (:func:`conform`), so a transform that drops or
renames a column fails before it writes; Delta enforces NOT NULL fields and CHECK constraints on
every commit. Change Data Feed is on for every table: the next layer reads what changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field as dataclass_field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, StringType, StructField, StructType

from crm_lakehouse.delta_writes import ensure_table


def field(name: str, dtype: DataType) -> StructField:
    """A nullable column."""
    return StructField(name, dtype, True)


def required(name: str, dtype: DataType = StringType()) -> StructField:
    """A NOT NULL column."""
    return StructField(name, dtype, False)


@dataclass(frozen=True)
class TableContract:
    """One table: its grain, key, schema, named CHECK constraints and physical layout."""

    name: str
    grain: str
    key: tuple[str, ...]
    schema: StructType
    constraints: dict[str, str] = dataclass_field(default_factory=dict)
    partition_by: tuple[str, ...] = ()
    cluster_by: tuple[str, ...] = ()
    properties: dict[str, str] = dataclass_field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.schema.fields]


def ensure_contract(spark: SparkSession, path: str, contract: TableContract) -> None:
    """Create the table if it does not exist (else add the constraints it lacks)."""
    ensure_table(spark, path, contract.schema, partition_by=contract.partition_by, cluster_by=contract.cluster_by,
                 constraints=contract.constraints, properties=contract.properties)


def conform(df: DataFrame, contract: TableContract) -> DataFrame:
    """Exactly the contract's columns, in its order, cast to its types; a missing column is an error."""
    missing = [c for c in contract.columns if c not in df.columns]
    if missing:
        raise ValueError(f"{contract.name}: the transform did not produce {missing}")
    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in contract.schema.fields])

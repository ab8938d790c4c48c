"""Table contracts shared by the silver and gold layers: schema, grain, key, constraints, layout.

Writers select exactly a contract's columns (:func:`conform`), so a transform that drops or
renames a column fails before it writes; Delta enforces NOT NULL fields and CHECK constraints on
every commit. Change Data Feed is on for every table: the next layer reads what changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field as dataclass_field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, StringType, StructField, StructType

from crm_lakehouse.delta_writes import ensure_table
from crm_lakehouse.spark import with_callers_job_group


def field(name: str, dtype: DataType) -> StructField:
    """A nullable column."""
    return StructField(name, dtype, True)


def required(name: str, dtype: DataType = StringType()) -> StructField:
    """A NOT NULL column."""
    return StructField(name, dtype, False)


# A MERGE into a table with them writes the changed rows and a small vector marking the old
# ones, instead of rewriting every file that holds a changed row: a daily batch's few hundred
# rows are spread over all of a table's files.
DELETION_VECTORS = {"delta.enableDeletionVectors": "true"}

# How erasure finds a person's rows in a table, each by the columns named (see erase.py):
# their golden ids, their retired ids, their source records, the records their rows reference
# (either side of a pair of records),
# or their identifiers in a delivered record kept as text.
SUBJECT_MATCHES = {
    "customer_id": ("customer_id",),
    "retired_customer_id": ("retired_customer_id",),
    "record": ("source", "source_customer_id"),
    "customer_record": ("customer_source", "source_customer_id"),
    "record_l": ("source_l", "source_customer_id_l"),
    "record_r": ("source_r", "source_customer_id_r"),
    "raw_record": ("source", "raw_record"),
}


# How a personal column may be shown to analysts (the SQL endpoint's analytics views, built from
# these declarations in sql/masking.py): its initial, the e-mail's first letter and domain, the
# phone's last four digits, a date's decade, the value only where at least k rows share it, or
# not at all.
MASKING_RULES = ("initial", "email_domain", "last4", "decade", "k_anonymous", "hidden")


@dataclass(frozen=True)
class Mask:
    """A personal column's masking: the rule and the name the masked value is shown under."""

    rule: str
    shown_as: str | None = None

    def __post_init__(self) -> None:
        if self.rule not in MASKING_RULES:
            raise ValueError(f"masking rule {self.rule!r} is not one of {MASKING_RULES}")
        if (self.rule == "hidden") != (self.shown_as is None):
            raise ValueError(f"masking rule {self.rule!r}: a hidden column has no shown_as, every other has one")


@dataclass(frozen=True)
class TableContract:
    """One table: its grain, key, schema, how a person's rows are found in it (``subject_match``,
    any of :data:`SUBJECT_MATCHES`; empty for a table without personal data), named CHECK
    constraints and physical layout.

    ``subject_match`` has no default: a new table says how it is erased, or that it holds no one.
    """

    name: str
    grain: str
    key: tuple[str, ...]
    schema: StructType
    subject_match: tuple[str, ...]
    constraints: dict[str, str] = dataclass_field(default_factory=dict)
    partition_by: tuple[str, ...] = ()
    cluster_by: tuple[str, ...] = ()
    properties: dict[str, str] = dataclass_field(default_factory=dict)
    # What a column means, for analysts: the table's column comments, and the SQL endpoint's
    # views show them too.
    comments: dict[str, str] = dataclass_field(default_factory=dict)
    # The personal columns and how analysts may see each; a column not named here is not personal.
    pii: dict[str, Mask] = dataclass_field(default_factory=dict)

    def __post_init__(self) -> None:
        for what, names in (("comments", self.comments), ("pii", self.pii)):
            unknown = sorted(set(names) - set(self.columns))
            if unknown:
                raise ValueError(f"{self.name}: {what} for columns it does not have: {unknown}")
        for match in self.subject_match:
            if match not in SUBJECT_MATCHES:
                raise ValueError(f"{self.name}: subject_match {match!r} is not one of {sorted(SUBJECT_MATCHES)}")
            missing = [c for c in SUBJECT_MATCHES[match] if c not in self.columns]
            if missing:
                raise ValueError(f"{self.name}: subject_match {match!r} needs the columns {missing}")

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.schema.fields]


def ensure_contract(spark: SparkSession, path: str, contract: TableContract) -> None:
    """Create the table if it does not exist (else add the constraints it lacks)."""
    ensure_table(spark, path, contract.schema, partition_by=contract.partition_by, cluster_by=contract.cluster_by,
                 constraints=contract.constraints, properties=contract.properties, comments=contract.comments)


# Creating a table is mostly the driver's own latency (a commit, a snapshot: 0.5-0.9 s each on
# 2 cores), not work, so a layer's tables are ensured a few at a time: silver's fifteen took
# 8.3-11.2 s one by one and 4.5-5.9 s three at a time.
TABLES_AT_ONCE = 3


def ensure_each(spark: SparkSession, ensure: Callable[[TableContract], None],
                contracts: Iterable[TableContract]) -> None:
    """``ensure`` every contract's table, a few side by side (each is its own Delta log), in the
    caller's job group; the first error, in the contracts' order, propagates once all have run."""
    with ThreadPoolExecutor(max_workers=TABLES_AT_ONCE) as pool:
        list(pool.map(with_callers_job_group(spark, ensure), contracts))


def conform(df: DataFrame, contract: TableContract) -> DataFrame:
    """Exactly the contract's columns, in its order, cast to its types; a missing column is an error."""
    missing = [c for c in contract.columns if c not in df.columns]
    if missing:
        raise ValueError(f"{contract.name}: the transform did not produce {missing}")
    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in contract.schema.fields])

"""Batches of a layer job: which input versions a batch consumes, written down before any write.

A batch is a pure function of its plan: the version range it reads of each input table (through
Delta's Change Data Feed) and the version of every output table before the batch (read with
time travel). The plan is saved first; every table write of the batch carries Delta's
idempotency pair (the layer's app id, version = batch id); the layer's run-log row is written
last and marks the batch done. After a crash the unfinished plan is run again: tables it already
committed skip their write, the others are computed from the same inputs as before.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from crm_lakehouse import storage
from crm_lakehouse.catalog import register_table
from crm_lakehouse.config import Settings, join_path
from crm_lakehouse.delta_writes import changes_rows, rows_changed, table_bytes, table_version
from crm_lakehouse.spark import interpreted_expressions, release_checkpoint

if TYPE_CHECKING:
    from crm_lakehouse.tables import TableContract

Result = TypeVar("Result")

CDF_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchPlan:
    """What one batch reads: (from, to) versions per changed input, each input's version consumed
    through, and every output table's version before the batch."""

    batch_id: int
    inputs: dict[str, tuple[int, int]]
    consumed: dict[str, int]
    outputs_before: dict[str, int]
    resumed: bool = False  # saved by an earlier run that did not finish it

    def to_json(self) -> str:
        return json.dumps({"batch_id": self.batch_id, "inputs": self.inputs, "consumed": self.consumed,
                           "outputs_before": self.outputs_before}, sort_keys=True, indent=1)

    @staticmethod
    def from_json(text: str, *, resumed: bool = False) -> BatchPlan:
        raw = json.loads(text)
        return BatchPlan(batch_id=int(raw["batch_id"]), inputs={k: (int(a), int(b)) for k, (a, b) in raw["inputs"].items()},
                         consumed={k: int(v) for k, v in raw["consumed"].items()},
                         outputs_before={k: int(v) for k, v in raw["outputs_before"].items()}, resumed=resumed)


def next_plan(spark: SparkSession, folder: str, *, inputs: dict[str, str], outputs: dict[str, str],
              finished: set[int], inserts_only: bool = False) -> BatchPlan | None:
    """The unfinished plan to resume, else a new plan over what the inputs gained, else None.

    Commits that change no row the batch would read (OPTIMIZE, VACUUM, an erasure's deletes
    when ``inserts_only``) are consumed without a batch: a plan with no inputs is saved, which
    counts as done, so the next batch starts after them.

    Args:
        folder: where this job's plans are saved (``<checkpoints>/<layer>/batches``).
        inputs: input table name -> path; outputs: output table name -> path.
        finished: the batch ids the job's run log records as done.
        inserts_only: the batches read only the rows the inputs gained (silver over bronze).
    """
    saved = sorted(int(name.split(".")[0]) for name in storage.list_files(spark, folder) if name.endswith(".json"))
    last = BatchPlan.from_json(storage.read_text(spark, join_path(folder, f"{saved[-1]}.json"))) if saved else None
    if last is not None and last.inputs and last.batch_id not in finished:
        return dataclasses.replace(last, resumed=True)
    consumed = last.consumed if last is not None else {}
    ranges: dict[str, tuple[int, int]] = {}
    now_consumed = dict(consumed)
    for name, path in inputs.items():
        latest = table_version(spark, path)
        start = consumed.get(name, -1) + 1
        if latest >= start:
            now_consumed[name] = latest
            if changes_rows(spark, path, (start, latest), inserts_only=inserts_only):
                ranges[name] = (start, latest)
    if now_consumed == consumed:
        return None
    plan = BatchPlan(batch_id=(saved[-1] + 1) if saved else 0, inputs=ranges, consumed=now_consumed,
                     outputs_before={name: table_version(spark, path) for name, path in outputs.items()})
    storage.write_text(spark, join_path(folder, f"{plan.batch_id}.json"), plan.to_json())
    if not ranges:
        log.info("batch %s: the new commits of %s change no rows; consumed without a batch", plan.batch_id,
                 ", ".join(sorted(name for name in now_consumed if now_consumed[name] != consumed.get(name))))
        return None
    return plan


def read_changes(spark: SparkSession, path: str, versions: tuple[int, int]) -> DataFrame:
    """Every change the table recorded between the two versions (inclusive), with ``_change_type``."""
    start, end = versions
    return (spark.read.format("delta").option("readChangeFeed", "true")
            .option("startingVersion", start).option("endingVersion", end).load(path))


def read_appended(spark: SparkSession, path: str, versions: tuple[int, int]) -> DataFrame:
    """The rows an append-only table gained between the two versions (inclusive)."""
    return read_changes(spark, path, versions).where(F.col("_change_type") == "insert").drop(*CDF_COLUMNS)


def read_before(spark: SparkSession, path: str, version: int, schema) -> DataFrame:
    """A table as of ``version`` (empty, with the contract's schema, when it did not exist yet)."""
    if version < 0:
        return spark.createDataFrame([], schema)
    return spark.read.format("delta").option("versionAsOf", version).load(path)


# A batch reads its inputs whole, not only what changed (a gold batch joins the touched customers
# to every fact): over tables this large, Spark's compiled, vectorized scans win whatever the
# batch changed. Measured with bench/batch.py's 99 records: at scale 1 (inputs 53 MiB for
# silver, 65 for gold) gold took 35.8 s compiled and 66.9 s interpreted, silver the same either
# way; at test scale (about 1 MiB each) interpreted took a quarter off both (docs/development.md).
INTERPRETED_BELOW_BYTES = 8 * 2**20


def small_batch(spark: SparkSession, settings: Settings, plan: BatchPlan, inputs: Mapping[str, str]) -> bool:
    """Whether the batch's inputs changed fewer rows than ``spark.interpreted_below_rows``, judged
    from their commit metrics, and hold less than ``INTERPRETED_BELOW_BYTES`` of data, from their
    checksum files; a batch of unknown size is not small."""
    below = settings.spark.interpreted_below_rows
    if below <= 0:
        return False
    total = 0
    for name, versions in plan.inputs.items():
        rows = rows_changed(spark, inputs[name], versions, enough=below - total)
        if rows is None:
            return False
        total += rows
        if total >= below:
            return False
    held = 0
    for name, path in inputs.items():
        version = plan.consumed.get(name, -1)
        size = table_bytes(spark, path, version) if version >= 0 else 0
        if size is None:
            return False
        held += size
        if held >= INTERPRETED_BELOW_BYTES:
            log.info("batch %s: %s input rows changed, but its inputs hold %.0f MiB or more: expressions compiled",
                     plan.batch_id, total, held / 2**20)
            return False
    log.info("batch %s: %s input rows changed, below %s: expressions interpreted", plan.batch_id, total, below)
    return True


class TablesAsOf(Mapping[str, DataFrame]):
    """Tables read as of fixed versions (:func:`read_before`), each on first use only.

    Opening a Delta table at a version loads its snapshot (a log replay on the driver and a job
    or two) when the DataFrame is made, whether or not the batch then reads it; a batch that
    touches two entities should not pay for the other tables.
    """

    def __init__(self, spark: SparkSession, *, paths: Mapping[str, str], versions: Mapping[str, int],
                 schemas: Mapping[str, object]) -> None:
        self._open: Callable[[str], DataFrame] = \
            lambda name: read_before(spark, paths[name], versions.get(name, -1), schemas[name])
        self._names = list(paths)
        self._opened: dict[str, DataFrame] = {}

    def __getitem__(self, name: str) -> DataFrame:
        if name not in self._opened:
            if name not in self._names:
                raise KeyError(name)
            self._opened[name] = self._open(name)
        return self._opened[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class Kept:
    """A batch's materialized intermediates, released together when the batch is done.

    Each is computed once and cut from its plan (a local checkpoint): it is read by several
    writes and counts, and the short plan keeps every later step's analysis cheap. Most of a
    batch's compute happens here, so the time of each is logged to show where a slow batch
    spends it.
    """

    def __init__(self, layer: str, batch_id: int) -> None:
        self._where = f"{layer} batch {batch_id}"
        self._frames: list[DataFrame] = []

    def __call__(self, df: DataFrame, what: str) -> DataFrame:
        computing = time.monotonic()
        self._frames.append(df.localCheckpoint(eager=True))
        log.info("%s: %s computed in %.1fs", self._where, what, time.monotonic() - computing)
        return self._frames[-1]

    def release(self) -> None:
        for df in self._frames:
            release_checkpoint(df)
        self._frames.clear()


Batch = TypeVar("Batch")


@dataclass(frozen=True)
class Step(Generic[Batch]):
    """One entity's part of a layer's batch: it runs only when something it ``reads`` changed
    (an input table's name, or a name an earlier step adds to the changed set)."""

    name: str
    reads: frozenset[str]
    run: Callable[[Batch], None]


def run_steps(steps: Sequence[Step[Batch]], batch: Batch, changed: set[str], *, where: str) -> None:
    """Every step whose inputs are in ``changed``, in order; a step may add what it changed."""
    for step in steps:
        if step.reads & changed:
            step.run(batch)
        else:
            log.info("%s: nothing new for %s", where, step.name)


@dataclass(frozen=True)
class Layer:
    """A layer job's output tables, each at ``<root>/<name>/<table>`` and registered as
    ``<name>.<table>``; its batch plans are saved under ``<checkpoints>/<name>/batches`` and its
    ``run_log`` table's rows mark batches done."""

    name: str
    contracts: Mapping[str, TableContract]
    run_log: str = "run_log"
    # Its batches read only the rows their inputs gained (silver over bronze's appends), so
    # commits that insert none, such as an erasure's deletes, are consumed without a batch.
    reads_inserts_only: bool = False

    def paths(self, settings: Settings) -> dict[str, str]:
        return {name: settings.table_path(self.name, name) for name in self.contracts}

    def as_of(self, spark: SparkSession, settings: Settings, versions: Mapping[str, int]) -> TablesAsOf:
        """The layer's tables as of ``versions`` (a plan's ``outputs_before``), each opened on first use."""
        return TablesAsOf(spark, paths=self.paths(settings), versions=versions,
                          schemas={name: c.schema for name, c in self.contracts.items()})

    def run_pending(self, spark: SparkSession, settings: Settings, *, inputs: Mapping[str, str],
                    run_batch: Callable[[BatchPlan], Result]) -> list[Result]:
        """Run every pending batch, an interrupted one first, then register the tables; [] when
        the inputs (name -> table path) gained nothing since the last plan."""
        outputs = self.paths(settings)
        results = []
        while True:
            finished = {row[0] for row in spark.read.format("delta").load(outputs[self.run_log])
                        .select("batch_id").distinct().collect()}
            plan = next_plan(spark, join_path(settings.checkpoints, self.name, "batches"), inputs=dict(inputs),
                             outputs=outputs, finished=finished,
                             inserts_only=self.reads_inserts_only)
            if plan is None:
                break
            with interpreted_expressions(spark, when=small_batch(spark, settings, plan, inputs)):
                results.append(run_batch(plan))
        for name, path in outputs.items():
            register_table(spark, self.name, name, path)
        return results

"""One SparkSession per test process (`make test` runs two, with pytest-xdist), and one synthetic
data set and the read-only lakehouses built from it once per run, shared by the processes.

Tests that write tables get their own lakehouse folder under pytest's tmp_path; the shared
landing data is copied, never written to.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import pickle
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from crm_lakehouse.catalog import register_all
from crm_lakehouse.config import Settings, join_path, load_settings
from crm_lakehouse.generator import generate, make_plan
from crm_lakehouse.spark import INTERPRETED_EXPRESSIONS, build_spark_session

WITHOUT_ADAPTIVE_EXECUTION = {"spark.sql.adaptive.enabled": "false"}

# A pytest-xdist worker's __main__ has neither __file__ nor __spec__, which pyspark.sql.connect
# takes for a doctest run: without grpc installed, importing it (MLflow does, to log a Spark model)
# calls sys.exit(0) and the worker dies. This worker is no doctest run.
if os.environ.get("PYTEST_XDIST_WORKER") and not hasattr(sys.modules["__main__"], "__file__"):
    sys.modules["__main__"].__file__ = "pytest-xdist-worker"

# The SQL endpoint's fixtures (a real server process) serve the endpoint and notebook tests.
pytest_plugins = ["tests.sql.fixtures"]

REPO = Path(__file__).resolve().parents[1]
TEST_SCALE = 0.01
TEST_DAYS = [0, 1]


# Session or module fixtures that run the pipeline (or start a server) before their tests can
# start: a test that needs any of them is end-to-end and runs in `make test`, not `make test-fast`.
PIPELINE_FIXTURES = frozenset({
    "generated", "one_shot", "day_by_day", "churn_runs", "sql_lakehouse", "analyst_endpoint", "matrix", "erased",
    "shop", "telco", "typo_exports",
})


# The session fixtures that cannot be handed from one test process to another: a server the
# process started (and stops) and the copy it serves. Under pytest-xdist (`make test` runs two
# test processes) their tests run in one process, so the server starts once. The read-only
# lakehouses (``generated``, ``one_shot``, ``day_by_day``, ``churn_runs``) are built once per run
# whichever process asks first (``built_once``), so their tests may run in either.
PROCESS_BOUND = frozenset({"sql_lakehouse", "analyst_endpoint"})


def process_group(item) -> str:
    """The xdist group a test runs in: the cluster test alone, the endpoint's tests together,
    any other test with the rest of its module (whose module fixtures it may share)."""
    if item.get_closest_marker("cluster"):
        return "cluster"
    if PROCESS_BOUND.intersection(item.fixturenames):
        return "endpoint"
    return item.module.__name__


Built = TypeVar("Built")


def built_once(tmp_path_factory, name: str, build: Callable[[], Built]) -> Built:
    """A read-only session fixture's value, built once per test run.

    Under pytest-xdist the first test process to ask builds it, in its own temporary folder,
    while the others wait on a lock beside their temporary folders, then load what it returned
    (paths and results, pickled): the lakehouse is files, which any process can read. A build
    that fails leaves nothing behind, so the next process to ask builds it again and reports
    its own error. Without xdist it is simply built.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return build()
    run_folder = tmp_path_factory.getbasetemp().parent  # the test processes' folders are in it
    with open(run_folder / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        done = run_folder / f"{name}.pickle"
        if done.exists():
            return pickle.loads(done.read_bytes())
        value = build()
        done.write_bytes(pickle.dumps(value))
        return value


def _files(root: Path) -> dict[str, str]:
    # By content, not modification time. Left out: ``registered_model_meta``, which MLflow
    # writes into a registered model's artifact folder (the name and version it was loaded as)
    # each time anyone loads it, scoring from a shared lakehouse included.
    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest() for f in root.rglob("*")
            if f.is_file() and f.name != "registered_model_meta"}


@contextlib.contextmanager
def kept_read_only(root: Path, name: str) -> Iterator[None]:
    """Fail the run (an error at the fixture's teardown) when a test added, changed or removed a
    file of a shared lakehouse: the other test process reads it at the same time, and the tests
    after it expect it as built. Write into a copy instead."""
    before = _files(root)
    yield
    after = _files(root)
    changed = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
    assert not changed, f"{name} is shared read-only, but a test changed {len(changed)} of its files " \
                        f"({', '.join(changed[:3])}): copy it before writing"


@contextlib.contextmanager
def shared_lakehouse(spark, settings: Settings, name: str) -> Iterator[None]:
    """A shared lakehouse for this process: its tables registered in this process's catalog (the
    jobs registered them only in the process that built it), kept read-only.

    Registration is ``CREATE TABLE IF NOT EXISTS``, and the shared lakehouses have the same table
    names: in a process that uses several, ``silver.customers`` names the first one registered.
    So tests read a shared lakehouse's tables by path (``settings.table_path``), never by name."""
    with kept_read_only(Path(settings.root), name):
        register_all(spark, settings)
        yield


@pytest.hookimpl(tryfirst=True)  # before xdist turns the group marks into node ids
def pytest_collection_modifyitems(config, items) -> None:
    """Mark ``slow`` every test that needs a pipeline fixture or is marked e2e or cluster, so
    ``pytest -m "not slow"`` (``make test-fast``) keeps the unit tests on inline data. Give each
    test its xdist group, the cluster test first: xdist hands groups out in collection order
    (``--no-loadscope-reorder``), and the longest one started last would run alone at the end."""
    for item in items:
        if PIPELINE_FIXTURES.intersection(item.fixturenames) or item.get_closest_marker("e2e") \
                or item.get_closest_marker("cluster"):
            item.add_marker(pytest.mark.slow)
        item.add_marker(pytest.mark.xdist_group(process_group(item)))
    items.sort(key=lambda item: process_group(item) != "cluster")


# The probabilistic matching model of every end-to-end run: trained on the labelled fixture
# (tests/silver/test_linkage.py checks that it still is), pinned so that a one-shot and a
# day-by-day run score with one model, as a lakehouse keeps one model from its first batch on.
PINNED_IDENTITY_MODEL = REPO / "tests" / "fixtures" / "identity" / "model.json"


def with_pinned_identity_model(settings: Settings) -> Settings:
    identity = settings.silver.identity
    matching = dataclasses.replace(identity.probabilistic, model=str(PINNED_IDENTITY_MODEL))
    silver = dataclasses.replace(settings.silver, identity=dataclasses.replace(identity, probabilistic=matching))
    return dataclasses.replace(settings, silver=silver)


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return with_pinned_identity_model(load_settings(REPO / "conf", env="local",
                                                    lakehouse="/tmp/crm-lakehouse-tests-unused"))


@pytest.fixture(scope="session")
def spark(base_settings, tmp_path_factory):
    session = build_spark_session(
        base_settings.spark,
        app_name="crm-lakehouse tests",
        extra_conf={
            # The catalog's schema folders: this test process's own, not ./spark-warehouse.
            "spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("warehouse")),
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.ui.showConsoleProgress": "false",
            # Every frame a test builds is tiny: compiling the code of each of its plans, and
            # planning each again after every stage (adaptive execution, which has no partitions
            # to coalesce here), cost more than its rows (docs/development.md). The product's
            # small batches run interpreted too; test_batches runs Spark's defaults on purpose.
            **INTERPRETED_EXPRESSIONS, **WITHOUT_ADAPTIVE_EXECUTION,
        },
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def comparable(df):
    """The DataFrame with map columns (``attributes``) as canonical JSON text: Spark cannot sort or
    hash maps, which chispa's row-order-free comparison needs."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import MapType

    return df.select(*[F.to_json(F.map_from_entries(F.array_sort(F.map_entries(F.col(f"`{f.name}`"))))).alias(f.name)
                       if isinstance(f.dataType, MapType) else F.col(f"`{f.name}`") for f in df.schema.fields])


def settings_for(base: Settings, root: Path, landing: Path | None = None) -> Settings:
    """The repository's settings pointed at a private lakehouse folder."""
    return dataclasses.replace(
        base,
        root=str(root),
        landing=str(landing or root / "landing"),
        checkpoints=join_path(str(root), "_checkpoints"),
    )


@pytest.fixture(scope="session")
def generated(spark, base_settings, tmp_path_factory) -> Iterator[Path]:
    """Days 0 and 1 at test scale, generated once per run. Read-only for tests."""
    def build() -> Path:
        out = tmp_path_factory.mktemp("generated") / "landing"
        generate(spark, make_plan(base_settings, scale=TEST_SCALE), str(out), TEST_DAYS)
        return out

    landing = built_once(tmp_path_factory, "generated", build)
    with kept_read_only(landing, "generated"):
        yield landing


def copy_landing(generated: Path, target: Path, *, days: list[int] | None = None) -> Path:
    """Copy the shared landing data (only the listed days' files) into a test's own folder."""
    def wanted(name: str) -> bool:
        return days is None or any(f"_d{day:03d}_" in name for day in days)

    for file in generated.rglob("*"):
        if file.is_file() and not any(part.startswith("_") for part in file.relative_to(generated).parts[:-1]):
            if wanted(file.name):
                destination = target / file.relative_to(generated)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, destination)
    for meta in ("_manifest", "_ground_truth"):
        if (generated / meta).exists() and not (target / meta).exists():
            shutil.copytree(generated / meta, target / meta)
    return target


@pytest.fixture(scope="session")
def one_shot(spark, base_settings, generated, tmp_path_factory) -> Iterator[Settings]:
    """Days 0 and 1 through bronze, silver and gold in one go (gold's "full rebuild").
    Read-only: copy it before writing."""
    from crm_lakehouse.bronze.ingest import ingest_all
    from crm_lakehouse.gold.build import build_gold
    from crm_lakehouse.silver.build import build_silver

    def build() -> Settings:
        root = tmp_path_factory.mktemp("one_shot")
        settings = settings_for(base_settings, root)
        copy_landing(generated, root / "landing")
        ingest_all(spark, settings)
        build_silver(spark, settings)
        build_gold(spark, settings)
        return settings

    settings = built_once(tmp_path_factory, "one_shot", build)
    with shared_lakehouse(spark, settings, "one_shot"):
        yield settings


class SimulatedCrash(RuntimeError):
    pass


def crash_after(commits: int, job_module, run) -> list[str]:
    """Run a layer job whose ``upsert`` dies after ``commits`` table commits, as a killed process
    would between two commits; returns the paths it had committed."""
    real_upsert, committed = job_module.upsert, []

    def crashing_upsert(*args, **kwargs):
        if len(committed) == commits:
            raise SimulatedCrash(f"killed after {commits} table commits")
        committed.append(args[2])
        return real_upsert(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(job_module, "upsert", crashing_upsert)
        with pytest.raises(SimulatedCrash):
            run()
    return committed


@dataclasses.dataclass
class BronzeRuns:
    """What bronze said in ``day_by_day``: day 0, day 0 again with nothing new, day 1."""

    day0: dict                   # source -> IngestResult
    rerun: dict
    day1: dict
    versions_before_rerun: dict  # source -> the bronze table's version
    versions_after_rerun: dict


@dataclasses.dataclass
class DayByDay:
    settings: Settings
    bronze: BronzeRuns
    silver_day0: list
    silver_day1: list            # the rerun after the crash
    committed_before_crash: list[str]
    gold_day0: list
    gold_day1: list


@pytest.fixture(scope="session")
def day_by_day(spark, base_settings, generated, tmp_path_factory) -> Iterator[DayByDay]:
    """Day 0 through every layer (bronze twice, the second time with nothing new), then day 1,
    whose silver batch crashes after four table commits and is rerun, and whose gold batch
    crashes after one and is rerun. Read-only."""
    from delta.tables import DeltaTable

    from crm_lakehouse.bronze.ingest import ingest_all
    from crm_lakehouse.gold import build as gold_build
    from crm_lakehouse.silver import build as silver_build

    def build() -> DayByDay:
        def ingest() -> dict:
            return {result.source: result for result in ingest_all(spark, settings)}

        def bronze_versions() -> dict:
            return {s.name: DeltaTable.forPath(spark, settings.table_path("bronze", s.name)).history(1).first()["version"]
                    for s in settings.sources}

        root = tmp_path_factory.mktemp("day_by_day")
        settings = settings_for(base_settings, root)
        copy_landing(generated, root / "landing", days=[0])
        bronze_day0 = ingest()
        versions_before_rerun = bronze_versions()
        bronze_rerun = ingest()
        versions_after_rerun = bronze_versions()
        silver_day0 = silver_build.build_silver(spark, settings)
        gold_day0 = gold_build.build_gold(spark, settings)
        copy_landing(generated, root / "landing", days=[1])
        bronze_day1 = ingest()

        # Day 1's silver batch dies after four table commits, gold's after one; both are rerun.
        commits = crash_after(4, silver_build, lambda: silver_build.build_silver(spark, settings))
        silver_day1 = silver_build.build_silver(spark, settings)
        crash_after(1, gold_build, lambda: gold_build.build_gold(spark, settings))
        gold_day1 = gold_build.build_gold(spark, settings)
        bronze = BronzeRuns(bronze_day0, bronze_rerun, bronze_day1, versions_before_rerun, versions_after_rerun)
        return DayByDay(settings, bronze, silver_day0, silver_day1, commits, gold_day0, gold_day1)

    runs = built_once(tmp_path_factory, "day_by_day", build)
    with shared_lakehouse(spark, runs.settings, "day_by_day"):
        yield runs


@dataclasses.dataclass
class ChurnRuns:
    settings: Settings
    no_champion_error: str       # what scoring said before any model existed
    weak: object                 # TrainingResult: a one-stump GBT, the first champion
    default: object              # the default settings: must beat the weak champion
    not_better: object           # a retrain that cannot clear churn.promotion_min_auc_gain
    scoring: object              # ScoringResult with the champion
    rescoring: object            # the same scoring again


def with_churn(settings: Settings, **changes) -> Settings:
    return dataclasses.replace(settings, churn=dataclasses.replace(settings.churn, **changes))


@pytest.fixture(scope="session")
def churn_runs(spark, one_shot, tmp_path_factory) -> Iterator[ChurnRuns]:
    """The one-shot lakehouse copied, then: score (no champion yet), train a weak model, train
    with the defaults, retrain without a chance of promotion, score twice. Read-only."""
    from crm_lakehouse.churn.score import score_churn
    from crm_lakehouse.churn.tracking import NoChampionError, use_tracking
    from crm_lakehouse.churn.train import train_churn
    from crm_lakehouse.errors import LakehouseError

    def build() -> ChurnRuns:
        root = tmp_path_factory.mktemp("churn") / "lakehouse"
        shutil.copytree(one_shot.root, root)
        settings = settings_for(one_shot, root)
        with pytest.raises(NoChampionError) as no_champion:
            score_churn(spark, settings)
        stump = dataclasses.replace(settings.churn.params, gbt_max_iter=1, gbt_max_depth=1)
        weak = train_churn(spark, with_churn(settings, candidates=("gbt",), params=stump, min_validation_auc=0.5))
        default = train_churn(spark, settings)
        not_better = train_churn(spark, with_churn(settings, candidates=("logistic_regression",),
                                                   promotion_min_auc_gain=1.0))
        scoring = score_churn(spark, settings)
        rescoring = score_churn(spark, settings)
        assert isinstance(no_champion.value, LakehouseError)
        return ChurnRuns(settings, str(no_champion.value), weak, default, not_better, scoring, rescoring)

    runs = built_once(tmp_path_factory, "churn_runs", build)
    use_tracking(runs.settings)  # MLflow pointed at its store, as after building it here
    with shared_lakehouse(spark, runs.settings, "churn_runs"):
        yield runs

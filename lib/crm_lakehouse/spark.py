"""The one place that builds the SparkSession, for jobs, the CLI and the tests alike.

Locally it starts embedded Spark (``local[*]``) and pulls Delta's jars from Maven Central once
into the project's Ivy cache. Under ``spark-submit`` the JVM already exists with the master, jars
and resources the submitter chose: those win, and only keys spark-submit left unset are added.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from crm_lakehouse import jvm_archive
from crm_lakehouse.config import SparkSettings
from crm_lakehouse.errors import DependencyError

log = logging.getLogger(__name__)

# The embedded JVM runs the driver and the executor in one process on a laptop's few cores, and
# is CPU-bound: the parallel collector takes fewer of those cores than G1 (Java's default, made
# for large heaps and short pauses) and slows the code running between collections less. The
# demo on the 2-core machine: 188-202 s with G1, 172-173 s with it (docs/development.md). A
# cluster's JVMs, under spark-submit, keep the collector their submitter chose.
EMBEDDED_JVM_GC = "-XX:+UseParallelGC"
# Spark compiles new classes for its plans all the time, and Java's optimizing compiler (C2)
# recompiles every method a JVM has run 5,000 times: over the demo's jobs C2 alone burnt 108-119 of
# the JVM's 267-295 CPU-s, on cores the tasks and the planning thread need. Ten times Java's
# thresholds keep C2 for the really hot code (the C1-compiled rest stays fast enough): C2 50-53
# CPU-s, the JVM 208-214 (docs/development.md). C1 alone is slower: planning and tasks need C2.
EMBEDDED_JVM_JIT = ("-XX:Tier4InvocationThreshold=50000 -XX:Tier4MinInvocationThreshold=6000 "
                    "-XX:Tier4CompileThreshold=150000 -XX:Tier4BackEdgeThreshold=400000")
EMBEDDED_JVM_OPTIONS = f"{EMBEDDED_JVM_GC} {EMBEDDED_JVM_JIT}"

DELTA_SQL_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def delta_maven_coordinates() -> str:
    """The io.delta artifact matching the installed pyspark and delta-spark.

    Named the way ``delta.configure_spark_with_delta_pip`` names it; that helper only works on
    a builder (and writes into the builder options every session shares), so the name is
    derived here and spark-submit users can print it.
    """
    from importlib.metadata import version

    import pyspark

    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    return f"io.delta:delta-spark_{spark_minor}_2.13:{version('delta-spark')}"


def linkage_jars() -> list[str]:
    """Splink's string-similarity functions for Spark SQL (Jaro-Winkler, Damerau-Levenshtein,
    double metaphone), a jar inside the splink wheel; [] without splink."""
    try:
        from splink.backends.spark import similarity_jar_location
    except ImportError:
        return []
    return [similarity_jar_location()]


def launched_by_spark_submit() -> bool:
    """True when spark-submit started the JVM and handed this Python driver its gateway."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_spark_session(settings: SparkSettings, *, app_name: str | None = None,
                        extra_conf: dict[str, str] | None = None) -> SparkSession:
    """Return the session for this process, creating it on first use.

    Args:
        settings: the ``spark:`` section of the loaded config.
        app_name: shown in the Spark UI and history server; defaults to the config's.
        extra_conf: keys the caller needs on top of the config (tests turn the UI off this way).
    """
    existing = SparkSession.getActiveSession()
    if existing is not None:
        # One session per process: a job called from the CLI inside a notebook or a test keeps
        # the caller's session and its settings rather than reconfiguring it under its feet.
        return existing
    wanted: dict[str, str] = {
        "spark.app.name": app_name or settings.app_name,
        **DELTA_SQL_CONF,
        **settings.conf,
        **(extra_conf or {}),
    }
    submitted: set[str] = set()
    pinned_jars: list[str] | None = None
    if launched_by_spark_submit():
        submitted = _keys_set_by_spark_submit()
    else:
        wanted["spark.master"] = settings.master
        # Embedded Spark talks only to itself: bind to loopback instead of guessing a LAN address.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Python UDF workers must be this interpreter (the project's venv), not whatever
        # `python3` is first on PATH, or pandas and phonenumbers are missing in them.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        if "spark.driver.extraJavaOptions" not in wanted:
            options = [EMBEDDED_JVM_OPTIONS]
            if settings.log4j_config:
                options.append(f"-Dlog4j2.configurationFile=file:{settings.log4j_config}")
            if settings.ivy_cache:
                options += jvm_archive.java_options(Path(settings.ivy_cache).parent / "jvm",
                                                    wanted.get("spark.driver.extraClassPath", ""))
            options += _java_math_where_no_native()
            wanted["spark.driver.extraJavaOptions"] = " ".join(options)
        pinned_jars = _cached_delta_jars(settings.ivy_cache)
        if pinned_jars:
            # Resolved before: the jar files themselves, so start-up needs neither Ivy nor a network.
            wanted["spark.jars"] = ",".join([*pinned_jars, *linkage_jars()])
        else:
            # The first session resolves Delta through Ivy and records the jars it got from
            # ``spark.jars``, which a jar of ours set here would replace: Splink's joins from
            # the next session on (`make setup` starts that first session).
            wanted["spark.jars.packages"] = delta_maven_coordinates()
            if settings.ivy_cache:
                wanted["spark.jars.ivy"] = settings.ivy_cache
                wanted["spark.jars.ivySettings"] = _ivy_settings_file(settings.ivy_cache)

    builder = SparkSession.builder
    for key, value in wanted.items():
        if key not in submitted:
            builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # the JVM reports unresolvable jars as a generic RuntimeException
        text = str(exc)
        if "unresolved dependency" in text or "io.delta" in text:
            raise DependencyError(
                f"Delta jars could not be resolved ({text.splitlines()[0][:200]})",
                where=settings.ivy_cache or "spark.jars.packages",
                fix="run `make jars` once with access to Maven Central, or pass --packages to spark-submit",
            ) from None
        raise
    _require_delta(spark)
    if settings.ivy_cache and not launched_by_spark_submit() and not pinned_jars:
        _remember_delta_jars(spark, settings.ivy_cache)
    return spark


def _java_math_where_no_native() -> list[str]:
    """Spark ML tries the system's BLAS and LAPACK first. Where they are not installed, the
    loader's native half prints "netlib-blas: JNI_OnLoad: dlopen(libblas.so.3) failed" on the
    console, a line nobody running a job can act on, then uses the Java implementation anyway:
    go to the Java one directly. Where they are installed, they are used."""
    import ctypes.util

    return [f"-Ddev.ludovic.netlib.{library}.allowNative=false" for library in ("blas", "lapack")
            if ctypes.util.find_library(library) is None]


def _jar_list_file(ivy_cache: str) -> str:
    # Named after the coordinates, so upgrading delta-spark or pyspark resolves afresh.
    return os.path.join(ivy_cache, "resolved-" + delta_maven_coordinates().replace(":", "_") + ".txt")


def delta_jar_files(settings: SparkSettings) -> list[str]:
    """Delta's own jars from the project cache (for a driver class path); [] when not cached."""
    return [jar for jar in _cached_delta_jars(settings.ivy_cache) or [] if os.path.basename(jar).startswith("io.delta_")]


def _cached_delta_jars(ivy_cache: str | None) -> list[str] | None:
    if not ivy_cache or not os.path.exists(_jar_list_file(ivy_cache)):
        return None
    with open(_jar_list_file(ivy_cache), encoding="utf-8") as handle:
        jars = [line.strip() for line in handle if line.strip()]
    return jars if jars and all(os.path.exists(j) for j in jars) else None


def _remember_delta_jars(spark: SparkSession, ivy_cache: str) -> None:
    jars = [j.removeprefix("file://").removeprefix("file:") for j in
            spark.sparkContext.getConf().get("spark.jars", "").split(",") if j]
    local = [j for j in jars if os.path.exists(j) and j not in linkage_jars()]
    if local:
        with open(_jar_list_file(ivy_cache), "w", encoding="utf-8") as handle:
            handle.write("\n".join(local) + "\n")


def _keys_set_by_spark_submit() -> set[str]:
    from pyspark import SparkConf
    from pyspark.core.context import SparkContext

    SparkContext._ensure_initialized()
    return {key for key, _ in SparkConf().getAll()}


def _require_delta(spark: SparkSession) -> None:
    jvm = spark.sparkContext._jvm
    try:
        jvm.java.lang.Class.forName("io.delta.tables.DeltaTable", True,
                                    jvm.java.lang.Thread.currentThread().getContextClassLoader())
    except Exception:
        raise DependencyError(
            "Delta Lake is not on the Spark classpath",
            where=f"spark.master={spark.sparkContext.master}",
            fix=f"add --packages {delta_maven_coordinates()} to spark-submit (or run `make jars` locally)",
        ) from None


def _ivy_settings_file(ivy_cache: str) -> str:
    """Ivy settings that resolve from the local cache, then Maven Central only.

    Spark's default chain also asks repos.spark-packages.org, which is unreachable from many
    networks (this machine's included); one resolver keeps the first fetch quick, and once the
    cache holds the jars Ivy answers from it without the network.
    """
    os.makedirs(ivy_cache, exist_ok=True)
    path = os.path.join(ivy_cache, "ivysettings.xml")
    content = f"""<ivysettings>
  <settings defaultResolver="central"/>
  <caches defaultCacheDir="{ivy_cache}/cache"/>
  <resolvers>
    <ibiblio name="central" m2compatible="true" root="https://repo1.maven.org/maven2/"/>
  </resolvers>
</ivysettings>
"""
    if not os.path.exists(path) or open(path, encoding="utf-8").read() != content:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(content)
    return path


def release_checkpoint(df: DataFrame) -> None:
    """Free a local checkpoint's blocks now.

    ``DataFrame.unpersist`` does not: it uncaches cached queries, and a local checkpoint is a scan
    of a persisted RDD instead, whose blocks stay in the block manager (the driver's memory, in
    local mode) until the JVM happens to collect the RDD.
    """
    plan = df._jdf.queryExecution().logical()
    if plan.getClass().getSimpleName() == "LogicalRDD":
        plan.rdd().unpersist(True)
    else:
        df.unpersist()


def with_callers_job_group(spark: SparkSession, work: Callable) -> Callable:
    """``work`` for a worker thread, run with the calling thread's Spark local properties.

    PySpark pins each Python thread to a JVM thread, and a new one starts without them: the
    workflow runner's job group would be lost, so a timeout could not cancel the Spark jobs
    its job runs on threads. Each call gets its own copy, because Spark marks the running
    query in them (``spark.sql.execution.id``) and two threads must not share that.
    """
    properties = spark.sparkContext._jsc.sc().getLocalProperties()

    def run(*args, **kwargs):
        spark.sparkContext._jsc.sc().setLocalProperties(properties.clone())
        return work(*args, **kwargs)

    return run


# Whole-stage code generation off, and every expression (projection, predicate, ordering)
# evaluated by Spark's interpreter rather than compiled with Janino for each plan. The factory
# mode is an internal key, so it is set only for the length of a block and put back.
INTERPRETED_EXPRESSIONS = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}


@contextmanager
def interpreted_expressions(spark: SparkSession, when: bool = True) -> Iterator[None]:
    """Within the block, the session's queries run interpreted (see ``INTERPRETED_EXPRESSIONS``).

    Compiling pays off over many rows; for a few thousand, generating, compiling and JIT-warming
    the code of each of a batch's hundreds of plans takes longer than the rows do
    (docs/development.md has the figures).
    """
    if not when:
        yield
        return
    before = {key: spark.conf.get(key, None) for key in INTERPRETED_EXPRESSIONS}
    for key, value in INTERPRETED_EXPRESSIONS.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)

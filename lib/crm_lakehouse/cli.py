"""``crm-lakehouse``: the command line. Every user error ends in one line and a non-zero exit."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence

from crm_lakehouse.errors import LakehouseError

log = logging.getLogger("crm_lakehouse")


def _common_options(*, defaults: bool) -> argparse.ArgumentParser:
    """The options every command takes. They are accepted before and after the command name; the
    command's copy has no defaults of its own, so it never overwrites one given before it
    (``crm-lakehouse --lakehouse /data job build_silver`` must run on /data)."""
    common = argparse.ArgumentParser(add_help=False)
    default = (lambda value: value) if defaults else (lambda value: argparse.SUPPRESS)
    common.add_argument("--conf", metavar="DIR", default=default(None),
                        help="config folder (default: ./conf, else the repository's)")
    common.add_argument("--env", default=default("local"), help="overlay conf/env/<ENV>.yaml (default: local)")
    common.add_argument("--lakehouse", metavar="DIR", default=default(None),
                        help="lakehouse root (default: $CRM_LAKEHOUSE_ROOT or ./lakehouse)")
    common.add_argument("--landing", metavar="DIR", default=default(None),
                        help="landing folder (default: <lakehouse>/landing)")
    common.add_argument("-v", "--verbose", action="store_true", default=default(False), help="log progress")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options(defaults=False)
    parser = argparse.ArgumentParser(prog="crm-lakehouse", description=__doc__, parents=[_common_options(defaults=True)])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", parents=[common], help="generate a small data set and run the pipeline on it")
    demo.add_argument("--scale", type=float, help="data size (default from conf: generator.scale)")
    demo.add_argument("--days", type=int, help="export days to generate, day 0 = full history")

    gen = commands.add_parser("generate", parents=[common], help="write synthetic CRM exports to a landing folder")
    gen.add_argument("--scale", type=float, help="1.0 ~ 100k people, 1M order lines (default from conf)")
    gen.add_argument("--days", type=int, help="generate days 0..N-1 (default from conf)")
    gen.add_argument("--day", type=int, help="generate only day K's increment")
    gen.add_argument("--seed", type=int, help="random seed (default from conf)")
    gen.add_argument("--out", metavar="DIR", help="landing folder to write (default: <lakehouse>/landing)")

    job = commands.add_parser("job", parents=[common], help="run one job, as spark-submit runs it")
    job.add_argument("name", help="job name, e.g. ingest_bronze")

    run = commands.add_parser("run", parents=[common], help="run a workflow of conf/workflows.yaml in dependency order")
    run.add_argument("--workflow", default="daily", help="workflow name (default: daily)")
    run.add_argument("--submit", action="store_true",
                     help="launch each job as its own application with deploy/spark-submit/submit.sh "
                          "(the cluster comes from CRM_SPARK_MASTER) instead of in this process")
    run.add_argument("--cycles", type=int,
                     help="a triggered workflow (continuous): stop after N cycles (default: until SIGTERM)")

    restore = commands.add_parser("restore", parents=[common],
                                  help="bring a table back to an earlier version (Delta RESTORE) after an operator mistake")
    restore.add_argument("table", help="layer.table, e.g. gold.customer_360")
    restore.add_argument("--version", type=int, required=True, help="the version to return to (see DESCRIBE HISTORY)")

    erase = commands.add_parser("erase", parents=[common],
                                help="GDPR/PIPL erasure: forget customers in every layer, old files included")
    erase.add_argument("--customer-id", action="append", default=[], metavar="ID",
                       help="golden customer_id to forget (repeatable)")
    erase.add_argument("--ids-file", metavar="FILE", help="a file of customer_ids, one per line (# comments allowed)")

    bench = commands.add_parser("bench", parents=[common], help="run the pipeline benchmark (bench/run.py)")
    bench.add_argument("--scale", type=float, required=True, help="1.0 ~ 100k people, 1M order lines")
    bench.add_argument("--days", type=int, default=3,
                       help="days generated: 0 the full run, 1 the increment, 2 the near-empty slice")
    bench.add_argument("--work", metavar="DIR", help="where landing data and lakehouses go (default .cache/bench)")
    bench.add_argument("--fixed-cost-only", action="store_true",
                       help="only day 0 and the near-empty increment: the figures compared across scales")

    sql = commands.add_parser("sql", parents=[common], help="start the SQL endpoint (Thrift JDBC/ODBC, HiveServer2)")
    sql.add_argument("--host", help="address to listen on (default from conf: 127.0.0.1)")
    sql.add_argument("--port", type=int, help="port (default from conf: 10000)")
    sql.add_argument("--role", choices=["analyst", "engineer"],
                     help="analyst: only the PII-masked analytics.* views (default); engineer: every layer")

    users = commands.add_parser("sql-user", parents=[common], help="manage the SQL endpoint's password file")
    users.add_argument("action", choices=["add"], help="add a user or change their password")
    users.add_argument("user", help="user name")
    users.add_argument("--password-file", metavar="FILE",
                       help="the file to write (default: $CRM_SQL_PASSWORD_FILE / sql.password_file)")

    source = commands.add_parser("source", parents=[common], help="draft a source YAML from a file, or preview a source")
    source_verbs = source.add_subparsers(dest="verb", required=True, metavar="VERB")
    draft = source_verbs.add_parser("suggest", parents=[common],
                                    help="print a draft source entry for an export file (format, options, patterns, mapping)")
    draft.add_argument("file", help="one export file")
    draft.add_argument("--entity", choices=["customers", "orders", "interactions", "products", "fx_rates"],
                       help="what the file holds (default: guessed from its column names)")
    draft.add_argument("--name", help="the source name (becomes bronze.<name>)")
    look = source_verbs.add_parser("preview", parents=[common],
                                   help="show a configured source's first rows mapped, with each row's fate; writes nothing")
    look.add_argument("name", help="a source name from conf/sources/*.yaml")
    look.add_argument("--rows", type=int, default=20, help="rows to show (default: 20)")

    commands.add_parser("fetch-jars", parents=[common], help="resolve Delta's jars into the project cache once")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    # py4j logs every gateway connection and callback at INFO: noise even when progress is asked for.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    # MLflow sets its own INFO handler (database migrations, run URLs): quiet unless asked.
    logging.getLogger("mlflow").setLevel(logging.INFO if args.verbose else logging.WARNING)
    # ... and MLflow resets its logger when imported, to this variable's level.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "INFO" if args.verbose else "WARNING")
    try:
        return _dispatch(args)
    except LakehouseError as error:
        print(f"crm-lakehouse: error: {error.line()}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("crm-lakehouse: interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from crm_lakehouse.errors import ConfigError
    from crm_lakehouse.startup import load

    if args.command == "bench":
        return _bench(args)
    if args.command == "source" and args.verb == "suggest":
        from crm_lakehouse.authoring.suggest import suggest

        print(suggest(args.file, entity=args.entity, name=args.name), end="")
        return 0
    settings = load(args.conf, env=args.env, lakehouse=args.lakehouse,
                    landing=getattr(args, "out", None) or args.landing)
    if args.command == "job":
        from crm_lakehouse.jobs import get_job

        get_job(args.name)  # an unknown name fails before Spark starts
    if args.command == "sql-user":
        return _sql_user(settings, args)
    if args.command == "run":
        from crm_lakehouse.workflows import get_workflow

        workflow = get_workflow(args.workflow, settings.conf_dir)  # a bad graph fails before Spark starts
        if args.cycles is not None and args.cycles < 1:
            raise ConfigError(f"--cycles {args.cycles} is out of range", where="crm-lakehouse run",
                              fix="give --cycles a positive number, or leave it out to run until stopped")
        if args.submit:
            return _run_workflow(workflow, None, settings, args)
    if args.command == "erase":
        from crm_lakehouse.erase import read_ids_file

        ids = list(args.customer_id) + (read_ids_file(args.ids_file) if args.ids_file else [])
        if not ids:
            raise ConfigError("no customer to erase", where="crm-lakehouse erase",
                              fix="give --customer-id ID (repeatable) or --ids-file FILE")
    if args.command == "sql":
        from crm_lakehouse.sql.server import plan_endpoint, serve

        endpoint = plan_endpoint(settings, host=args.host, port=args.port, role=args.role)
        return serve(settings, endpoint, on_ready=lambda line: print(line, flush=True))
    if args.command == "source" and args.rows < 1:
        raise ConfigError(f"--rows {args.rows} is out of range", where="crm-lakehouse source preview",
                          fix="give --rows a positive number")
    for name in ("scale", "days", "day"):
        value = getattr(args, name, None)
        if value is not None and value < (0 if name == "day" else 1e-9 if name == "scale" else 1):
            raise ConfigError(f"--{name} {value} is out of range", where=f"crm-lakehouse {args.command}",
                              fix=f"give --{name} a positive number")
    spark = _session(settings, args.command)
    if args.command == "fetch-jars":
        from crm_lakehouse.spark import delta_maven_coordinates

        print(f"Delta jars ready: {delta_maven_coordinates()} (cache: {settings.spark.ivy_cache})")
        return 0
    if args.command == "generate":
        return _generate(spark, settings, args)
    if args.command == "job":
        return _job(spark, settings, args.name)
    if args.command == "run":
        return _run_workflow(workflow, spark, settings, args)
    if args.command == "restore":
        return _restore(spark, settings, args)
    if args.command == "demo":
        return _demo(spark, settings, args)
    if args.command == "erase":
        return _erase(spark, settings, ids)
    if args.command == "source":
        return _preview(spark, settings, args)
    raise AssertionError(args.command)


def _sql_user(settings, args) -> int:
    import getpass
    from pathlib import Path

    from crm_lakehouse.errors import ConfigError
    from crm_lakehouse.sql.users import set_password

    file = args.password_file or settings.sql.password_file
    if not file:
        raise ConfigError("no password file given", where="crm-lakehouse sql-user",
                          fix="pass --password-file FILE or set CRM_SQL_PASSWORD_FILE (keep it outside the repository)")
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.user}: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the two passwords differ", where="crm-lakehouse sql-user", fix="type the same one twice")
    else:
        password = sys.stdin.readline().rstrip("\n")  # scripts pipe it in, never as an argument
    set_password(Path(file), args.user, password)
    print(f"{args.user}: password stored (salted PBKDF2) in {file}; the endpoint reads it on the next login")
    return 0


def _session(settings, command: str):
    from crm_lakehouse.spark import build_spark_session

    spark = build_spark_session(settings.spark, app_name=f"crm-lakehouse {command}")
    spark.sparkContext.setLogLevel("WARN")
    return spark


def _generate(spark, settings, args) -> int:
    from crm_lakehouse.generator import generate, make_plan

    days = [args.day] if args.day is not None else list(range(args.days or settings.generator.days))
    plan = make_plan(settings, seed=args.seed, scale=args.scale)
    started = time.monotonic()
    results = generate(spark, plan, settings.landing, days)
    rows = []
    for result in results:
        for name, stats in result.manifest["sources"].items():
            rows.append({"day": result.day, "source": name, "records": stats["records"],
                         "data_lines": stats["data_lines"], "defects": sum(stats["defects"].values())})
    print(format_table(rows, ["day", "source", "records", "data_lines", "defects"]))
    print(f"\nwrote {len(days)} day(s) at scale {plan.scale} (seed {plan.seed}) to {settings.landing} "
          f"in {time.monotonic() - started:.0f}s; defect counts: {settings.landing}/_manifest/day=K/manifest.json")
    return 0


def _erase(spark, settings, ids: list[str]) -> int:
    from crm_lakehouse.erase import erase

    result = erase(spark, settings, ids)
    for subject in result.subjects:
        print(f"erased {subject.requested_id}: {len(subject.golden_ids)} golden id(s), "
              f"{len(subject.records)} source record(s)")
    for customer_id in result.already_erased:
        print(f"{customer_id}: already erased (audit.erasures has it)")
    if result.subjects:
        deleted = {table: n for table, n in result.rows_deleted.items() if n}
        print(format_table([{"table": t, "rows_deleted": n} for t, n in sorted(deleted.items())], ["table", "rows_deleted"]))
        print(f"\nrequest {result.request_id}: {sum(deleted.values())} rows deleted from {len(deleted)} tables, "
              f"{result.tables_purged} tables purged of old files in {result.seconds:.0f}s; recorded in audit.erasures. "
              "The landing files and the source systems still hold these people: erase them there too.")
    return 0


def _bench(args) -> int:
    from pathlib import Path

    from crm_lakehouse.errors import ConfigError

    script = Path(__file__).resolve().parents[2] / "bench" / "run.py"
    if not script.exists():
        raise ConfigError("the benchmark is not part of an installed package", where=str(script),
                          fix="run it from a clone of the repository: .venv/bin/python bench/run.py --scale S")
    import runpy

    sys.argv = [str(script), "--scale", str(args.scale), "--days", str(args.days)] + (
        ["--work", args.work] if args.work else []) + (["--fixed-cost-only"] if args.fixed_cost_only else [])
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as done:
        return int(done.code or 0) if not isinstance(done.code, str) else (print(done.code, file=sys.stderr) or 1)
    return 0


def _job(spark, settings, name: str) -> int:
    from crm_lakehouse.jobs import get_job

    started = time.monotonic()
    result = get_job(name)(spark, settings)
    if result.rows:
        print(format_table(result.rows, list(result.rows[0])))
    for title, rows in result.sections.items():
        print(f"\n{title}:\n")
        print(format_table(rows, list(rows[0])))
    for note in result.notes:
        print(f"\n{note}")
    status = "ok" if result.ok else f"FAILED ({len(result.failed)} problem(s))"
    print(f"\njob {name}: {status} in {time.monotonic() - started:.0f}s")
    for problem in result.failed:
        print(f"crm-lakehouse: error: {problem}", file=sys.stderr)
    return 0 if result.ok else 1


def _run_workflow(workflow, spark, settings, args) -> int:
    from crm_lakehouse.runner import InProcessLauncher, SparkSubmitLauncher, run_continuously, run_workflow

    if spark is None:
        # The jobs get the options this run was given, so they read the same config and tables.
        passed = [(flag, value) for flag, value in (("--conf", args.conf), ("--lakehouse", args.lakehouse),
                                                    ("--landing", args.landing)) if value]
        job_args = ["--env", args.env, *(item for pair in passed for item in pair)] + (["-v"] if args.verbose else [])
        launch = SparkSubmitLauncher(job_args)
    else:
        launch = InProcessLauncher(spark, settings)
    show_rows = (lambda rows: print(format_table(rows, list(rows[0])))) if args.verbose else None

    def report(line: str) -> None:
        print(line, flush=True)

    if workflow.trigger_seconds is not None:
        runs = run_continuously(workflow, launch, cycles=args.cycles, report=report, show_rows=show_rows)
    else:
        runs = [run_workflow(workflow, launch, report=report, show_rows=show_rows)]
    last = runs[-1] if runs else None
    if last is None or last.ok:
        return 0
    for task in last.failed:
        fix = "" if " fix: " in task.detail else \
            " — fix: see the job's output above, then rerun the workflow (finished jobs have nothing left to do)"
        print(f"crm-lakehouse: error: workflow {workflow.name}: job {task.job} {task.status.lower()}: {task.detail}{fix}",
              file=sys.stderr)
    return 1


def _preview(spark, settings, args) -> int:
    from crm_lakehouse.authoring.preview import preview

    settings.source(args.name)  # an unknown name is one line before any file is read
    rows = preview(spark, settings, args.name, rows=args.rows)
    print(format_table(rows, list(rows[0])) if rows else "(no rows)")
    fates = {}
    for row in rows:
        fates[row["fate"]] = fates.get(row["fate"], 0) + 1
    print(f"\n{len(rows)} rows of {args.name}: " + ", ".join(f"{n} {fate}" for fate, n in sorted(fates.items()))
          + ". Nothing was written.")
    return 0


def _restore(spark, settings, args) -> int:
    from crm_lakehouse.maintain import restore_table

    done = restore_table(spark, settings, args.table, args.version)
    print(f"{done.table}: restored to version {done.to_version} (was {done.from_version}, now version "
          f"{done.new_version}; {done.files_removed} files removed, {done.files_restored} restored). "
          f"Undo with --version {done.from_version}.")
    if not done.table.startswith("gold."):
        print("The tables built from it are not rolled back with it: restore them to their matching "
              "versions too (DESCRIBE HISTORY), or rebuild them.")
    return 0


def _demo(spark, settings, args) -> int:
    from crm_lakehouse.demo import run_demo

    started = time.monotonic()
    result = run_demo(spark, settings, scale=args.scale, days=args.days)
    print("Bronze tables (one per region x channel x entity source):\n")
    print(format_table(result.bronze, ["source", "region", "channel", "entity", "format", "bronze_rows", "unparseable_rows"]))
    total = sum(r["bronze_rows"] for r in result.bronze)
    # The clock covers generation and every layer, not bronze alone: say so, or it reads as slow ingest.
    print(f"\n{len(result.bronze)} sources, {total} bronze rows, ingested from {result.landing} "
          f"(days {result.days[0]}..{result.days[-1]}); generating and building every layer took "
          f"{time.monotonic() - started:.0f}s.")
    print(f"Tables: {settings.root}/bronze/<source> (Delta); rerun `make demo` and nothing is ingested twice.")
    if result.ingest.ok:
        _print_silver(result)
        _print_gold(result)
        _print_churn(result)
        _print_sql_endpoint(settings)
    for problem in result.ingest.failed:
        print(f"crm-lakehouse: error: {problem}", file=sys.stderr)
    return 0 if result.ingest.ok else 1


def _print_silver(result) -> None:
    batches = ", ".join(f"{b.batch_id}{' (resumed)' if b.resumed else ''} in {b.seconds:.0f}s" for b in result.silver_batches)
    print(f"\nSilver: {'batch ' + batches if batches else 'nothing new in bronze, no batch run'}.\n")
    print(format_table(result.silver_tables, ["table", "rows"]))
    print("\nReconciliation over all batches (rows in = accepted + quarantined + duplicates removed):\n")
    print(format_table(result.silver_reconciliation,
                       ["target_table", "rows_in", "accepted", "quarantined", "duplicates_removed"]))
    print("\nQuarantine by rule (a row breaking two rules counts under both):\n")
    print(format_table(result.quarantine_by_rule, ["table", "rule", "rows"]) if result.quarantine_by_rule
          else "(nothing quarantined)")


def _print_gold(result) -> None:
    batches = ", ".join(f"{b.batch_id} (as of {b.as_of_date}, {b.affected['customers']} customers affected) in "
                        f"{b.seconds:.0f}s" for b in result.gold_batches)
    print(f"\nGold: {'batch ' + batches if batches else 'silver has not changed, no batch run'}.")
    print(f"\nActive customers by RFM segment (gold.customer_360), by lifetime value ({result.reporting_currency}):\n")
    print(format_table(result.segments, ["segment", "customers", "lifetime_value_reporting"]))
    print(f"\nSales by region x channel (gold.sales_daily, {result.reporting_currency}; net = gross - returns):\n")
    print(format_table(result.sales, ["region", "channel", "orders", "units", "gross_sales_reporting",
                                      "returns_reporting", "net_sales_reporting"]))


def _print_churn(result) -> None:
    champion = result.champion
    if result.training is not None:
        print(f"\nChurn model: trained in {result.training.seconds:.0f}s (MLflow run {result.training.run_id}); "
              f"{result.training.decision}.")
    else:
        print(f"\nChurn model: champion version {champion['version']} was trained on the current silver; not retrained.")
    oracle = champion["oracle_roc_auc"]
    print(f"Champion crm_churn v{champion['version']} on the validation snapshot: ROC AUC {champion['roc_auc']:.3f}"
          + (f" (true propensities: {oracle:.3f})" if oracle else "")
          + f", PR AUC {champion['pr_auc']:.3f}, top-decile lift {champion['lift_top_decile']:.2f}, "
            f"Brier {champion['brier_score']:.3f}.")
    scoring = result.scoring
    print(f"Scored {scoring.customers} customers as of {scoring.as_of_date} into gold.churn_scores and "
          f"gold.customer_360: " + ", ".join(f"{scoring.bands.get(b, 0)} {b}" for b in ("high", "medium", "low"))
          + " risk.")
    print(f"MLflow UI (runs, plots, registry): {result.mlflow_ui}")


def _print_sql_endpoint(settings) -> None:
    from pathlib import Path

    from crm_lakehouse.sql.jar import spark_home

    cli = Path(sys.executable).parent / "crm-lakehouse"
    port = settings.sql.port
    query = "SELECT * FROM analytics.customers_at_risk ORDER BY value_at_risk_reporting DESC LIMIT 5"
    print(f"\nSQL endpoint for analysts (PII-masked analytics.* views): start it with\n"
          f"  {cli} sql --lakehouse {settings.root}\n"
          f"then query it from another terminal, e.g. with the beeline in the pyspark wheel:\n"
          f"  {spark_home() / 'bin' / 'beeline'} -u jdbc:hive2://127.0.0.1:{port}/analytics -n analyst "
          f"-e \"{query}\"")


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A plain text table, numbers right-aligned, for terminals and CI logs."""
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max([len(c)] + [_width(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row.get(c), (int, float)) for row in rows) for c in columns]

    def line(values: list[str]) -> str:
        return "  ".join(_pad(v, w, right) for v, w, right in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *[line(r) for r in cells]])


def _width(text: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - _width(text))
    return fill + text if right else text + fill


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Submit one CRM Lakehouse job with spark-submit: prints the exact command, then runs it.
#
#   deploy/spark-submit/submit.sh JOB [job options]       e.g. build_gold --env cluster
#
# JOB is a file of jobs/ (ingest_bronze, build_silver, build_gold, train_churn, score_churn,
# maintain, generate, run_workflow). Job options go to the job (--env, --conf, --lakehouse, -v).
#
# Environment (all optional):
#   CRM_SPARK_MASTER     local[*] (default) | spark://HOST:7077 | yarn | k8s://https://HOST:PORT
#   CRM_DEPLOY_MODE      client | cluster (default: cluster on Kubernetes, client elsewhere;
#                        Python applications on a standalone master run in client mode only)
#   CRM_PYSPARK_PYTHON   the Python of the driver and executors (a venv or an image's python)
#   CRM_K8S_IMAGE        Kubernetes: the image built from deploy/k8s/Dockerfile
#   CRM_K8S_NAMESPACE    Kubernetes namespace (default: crm-lakehouse)
#   CRM_SUBMIT_OPTS      more spark-submit options, e.g. "--executor-memory 8g --num-executors 20"
#   CRM_CACHE_DIR        the caches `make setup` fills (default: .cache of this checkout): Delta's
#                        resolved jars (ivy/) and the driver JVM's class archive (jvm/)
#   CRM_SUBMIT_DRY_RUN=1 print the command without running it
#   SPARK_HOME           the Spark to submit with (default: the pyspark of this project's venv)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Delta's artifact for the pinned pyspark/delta-spark pair (a test keeps it equal to
# `crm_lakehouse.spark.delta_maven_coordinates()`).
delta_package=io.delta:delta-spark_4.2_2.13:4.4.0

die() { echo "submit.sh: error: $*" >&2; exit 2; }

[[ $# -ge 1 ]] || die "no job given — fix: deploy/spark-submit/submit.sh JOB [options]; jobs: $(cd "$repo/jobs" && ls *.py | sed 's/\.py$//' | tr '\n' ' ')"
job=$1
shift
[[ -f "$repo/jobs/$job.py" ]] || die "unknown job '$job' (no jobs/$job.py) — fix: use one of: $(cd "$repo/jobs" && ls *.py | sed 's/\.py$//' | tr '\n' ' ')"

master=${CRM_SPARK_MASTER:-local[*]}
python=${CRM_PYTHON:-$repo/.venv/bin/python}
[[ -x "$python" ]] || python=$(command -v python3)
if [[ -z "${SPARK_HOME:-}" ]]; then
  SPARK_HOME=$("$python" -c 'import pyspark, os; print(os.path.dirname(pyspark.__file__))' 2>/dev/null) \
    || die "no SPARK_HOME and no pyspark in $python — fix: export SPARK_HOME=/path/to/spark or run make setup"
  export SPARK_HOME
fi

cmd=("$SPARK_HOME/bin/spark-submit" --master "$master" --name "crm-lakehouse $job")

case "$master" in
  k8s://*)
    # The image holds the code, conf/, the Python packages and Delta's jars (deploy/k8s/Dockerfile):
    # nothing is shipped from here, the driver runs in the cluster.
    cmd+=(--deploy-mode "${CRM_DEPLOY_MODE:-cluster}"
          --conf "spark.kubernetes.container.image=${CRM_K8S_IMAGE:-crm-lakehouse:0.1.0}"
          --conf "spark.kubernetes.namespace=${CRM_K8S_NAMESPACE:-crm-lakehouse}"
          --conf spark.kubernetes.authenticate.driver.serviceAccountName=spark)
    # shellcheck disable=SC2206  # CRM_SUBMIT_OPTS is a list of options on purpose
    cmd+=(${CRM_SUBMIT_OPTS:-}
          "local:///opt/crm-lakehouse/jobs/$job.py" --conf /opt/crm-lakehouse/conf "$@")
    ;;
  *)
    mode=${CRM_DEPLOY_MODE:-client}
    # Code and config travel with the application, so cluster nodes need no checkout.
    mapfile -t built < <("$python" -m crm_lakehouse.package --out "$repo/dist")
    [[ ${#built[@]} -eq 2 ]] || die "could not build the code and config archives — fix: run make setup"
    cmd+=(--deploy-mode "$mode" --py-files "${built[0]}")
    cache=${CRM_CACHE_DIR:-$repo/.cache}
    resolved="$cache/ivy/resolved-${delta_package//:/_}.txt"
    jars=()
    if [[ -s "$resolved" ]]; then
      while IFS= read -r jar; do
        if [[ -f "$jar" ]]; then jars+=("$jar"); elif [[ -n "$jar" ]]; then jars=(); break; fi
      done < "$resolved"
    fi
    if [[ ${#jars[@]} -gt 0 ]]; then
      # Delta's jars as the embedded session resolved them: shipped as files, so no application
      # pays for Ivy's resolution (2-3 s of a cold JVM on 2 cores).
      cmd+=(--jars "$(IFS=,; echo "${jars[*]}")")
    else
      cmd+=(--packages "$delta_package")
    fi
    if [[ -f "$cache/ivy/ivysettings.xml" ]]; then
      # Resolve packages (Delta's when not resolved yet, any in CRM_SUBMIT_OPTS) through the
      # project's cache (filled by `make setup`) instead of ~/.ivy2.
      cmd+=(--conf "spark.jars.ivy=$cache/ivy" --conf "spark.jars.ivySettings=$cache/ivy/ivysettings.xml")
    fi
    if [[ -n "${CRM_PYSPARK_PYTHON:-}" ]]; then
      cmd+=(--conf "spark.pyspark.python=$CRM_PYSPARK_PYTHON")
    fi
    if [[ "$mode" == cluster ]]; then
      # The driver starts on a cluster node: conf/ arrives as an archive unpacked into ./conf.
      cmd+=(--archives "${built[1]}#conf")
      conf_args=(--conf conf)
    else
      # The driver runs on this machine: it maps the class archive `make setup` wrote for the
      # embedded JVM (the same java and class path), as the embedded JVM does; a stale one is
      # ignored by the JVM. The cluster's executors start without it.
      archive=$("$python" -m crm_lakehouse.jvm_archive "$cache/jvm" 2>/dev/null) || archive=""
      cmd+=(--driver-java-options "-Dlog4j2.configurationFile=file:$repo/conf/log4j2.properties${archive:+ $archive}")
      conf_args=()
    fi
    # shellcheck disable=SC2206  # CRM_SUBMIT_OPTS is a list of options on purpose
    cmd+=(${CRM_SUBMIT_OPTS:-} "$repo/jobs/$job.py" "${conf_args[@]}" "$@")
    ;;
esac

printf '%q ' "${cmd[@]}"
echo
[[ "${CRM_SUBMIT_DRY_RUN:-}" == 1 ]] && exit 0
exec "${cmd[@]}"

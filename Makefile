# Every target does its own set-up, so a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The stamp is rebuilt when the dependency pins change, so `git pull` + `make test` stays right.
INSTALLED := $(VENV)/.installed
JARS      := .cache/ivy/.resolved
SQL_JAR   := .cache/sql/.built
# Airflow lives in its own venv: its ~130 pinned packages must not constrain the lakehouse's.
AIRFLOW_VENV := .cache/airflow/venv
AIRFLOW      := .cache/airflow/.installed
# dbt (the analysts' sandbox test) too: dbt-core pins its own protobuf, click and jinja.
DBT_VENV := .cache/dbt/venv
DBT      := .cache/dbt/.installed

.PHONY: demo test test-fast setup jars airflow dbt deploy dist clean clean-lakehouse

setup: $(INSTALLED) $(JARS) $(SQL_JAR)

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

# Delta's jars come from Maven Central once, into .cache/ivy; later runs resolve them offline.
$(JARS): $(INSTALLED)
	$(BIN)/crm-lakehouse fetch-jars
	touch $@

jars: $(JARS)

# The SQL endpoint's access policy and password check, compiled against the pyspark wheel's jars;
# then the JVM class archives (.cache/jvm) that start every later Spark JVM about 4 s sooner.
$(SQL_JAR): $(INSTALLED) $(JARS) $(shell find lib/crm_lakehouse/sql/java -name "*.java")
	$(BIN)/python -m crm_lakehouse.sql.jar
	touch $@

# A tool in a venv of its own ($(1)), pinned by $(2)/requirements.txt and $(2)/constraints.txt.
define own_venv
	rm -rf $(1)
	$(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install --quiet --upgrade pip
	$(1)/bin/python -m pip install --quiet -c $(2)/constraints.txt -r $(2)/requirements.txt
	touch $@
endef

# The Airflow the DAG test parses deploy/airflow with (DagBag), pinned by deploy/airflow/constraints.txt.
$(AIRFLOW): deploy/airflow/requirements.txt deploy/airflow/constraints.txt
	$(call own_venv,$(AIRFLOW_VENV),deploy/airflow)

airflow: $(AIRFLOW)

# The dbt the sandbox test runs deploy/dbt/project with, pinned by deploy/dbt/constraints.txt.
$(DBT): deploy/dbt/requirements.txt deploy/dbt/constraints.txt
	$(call own_venv,$(DBT_VENV),deploy/dbt)

dbt: $(DBT)

# Regenerate deploy/databricks and deploy/k8s after editing conf/workflows.yaml.
deploy: $(INSTALLED)
	$(BIN)/python -m crm_lakehouse.deploy_files

# What spark-submit ships: dist/crm_lakehouse-<version>.zip (--py-files) and dist/crm_conf.zip.
dist: $(INSTALLED)
	$(BIN)/python -m crm_lakehouse.package --out dist

demo: setup
	$(BIN)/crm-lakehouse demo

# Two test processes (pytest-xdist): one Spark JVM leaves a quarter of the 2 cores idle. The
# read-only lakehouse fixtures are built once per run and shared (tests/conftest.py, built_once).
PYTEST := $(BIN)/python -m pytest -n 2 --dist loadgroup --no-loadscope-reorder

# The three venvs install side by side (pip waits on downloads and disk more than on the cores).
test:
	@$(MAKE) --no-print-directory -j3 setup airflow dbt
	$(PYTEST) --durations=40

# The unit tests on inline data, for every change: no pipeline fixture, server or cluster.
test-fast: setup
	$(PYTEST) -m "not slow" --durations=10

clean-lakehouse:
	rm -rf lakehouse

clean: clean-lakehouse
	rm -rf $(VENV) .cache .pytest_cache dist

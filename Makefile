# Every target does its own set-up, so a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The stamp is rebuilt when the dependency pins change, so `git pull` + `make test` stays right.
INSTALLED := $(VENV)/.installed
JARS      := .cache/ivy/.resolved
SQL_JAR   := .cache/sql/.built

.PHONY: demo test setup jars clean clean-lakehouse

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

# The SQL endpoint's access policy and password check, compiled against the pyspark wheel's jars.
$(SQL_JAR): $(INSTALLED) $(wildcard lib/crm_lakehouse/sql/java/crm/sql/*.java)
	$(BIN)/python -m crm_lakehouse.sql.jar
	touch $@

demo: setup
	$(BIN)/crm-lakehouse demo

test: setup
	$(BIN)/python -m pytest

clean-lakehouse:
	rm -rf lakehouse

clean: clean-lakehouse
	rm -rf $(VENV) .cache .pytest_cache

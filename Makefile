# Every target creates and uses its own virtual environment in .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: help venv test test-fast demo bench lint typecheck clean

help:
	@echo "make demo   - set up and run a whole communication test on SQLite with sandbox providers"
	@echo "make test   - set up and run the test suite (PostgreSQL too when COMMTEST_TEST_POSTGRES_URL is set)"
	@echo "make bench  - run the benchmarks under bench/"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/commtest demo

bench: $(STAMP)
	@for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

lint: $(STAMP)
	$(PY) -m ruff check commtest scheduler channels playbooks reports web tests

typecheck: $(STAMP)
	$(PY) -m mypy

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache

# Until the first release nothing is deployed, so the initial migration is regenerated
# from the models instead of stacking migrations. Remove this target at the first release.
regen-initial-migration: $(STAMP)
	rm -f var/regen.db commtest/migrations/versions/0001_initial_schema.py
	$(PY) -c "from alembic import command; from commtest.db import alembic_config, make_engine; u='sqlite:///var/regen.db'; e=make_engine(u); c=alembic_config(u); conn=e.connect(); c.attributes['connection']=conn; command.revision(c, message='initial schema', autogenerate=True, rev_id='0001'); conn.close()"
	rm -f var/regen.db

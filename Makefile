# Every target creates and uses its own virtual environment in .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: help venv test test-fast fuzz faults demo bench lint typecheck clean catalogues

help:
	@echo "make demo   - set up and run a whole communication test on SQLite with sandbox providers"
	@echo "make test   - set up and run the test suite (PostgreSQL too when COMMTEST_TEST_POSTGRES_URL is set)"
	@echo "make fuzz   - fuzz the playbook and directory readers and the e-mail parsers (about 5 minutes)"
	@echo "make faults - the fault suite: kill -9 of the leader on two replicas, provider faults, a PostgreSQL"
	@echo "              restart, DST and clock jumps (10 to 14 minutes; prints one RESULT line)"
	@echo "make bench  - run the benchmarks under bench/"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# HYPOTHESIS_PROFILE=quick|fuzz|deep (tests/fuzz/conftest.py); the default fits in about 5 minutes.
fuzz: $(STAMP)
	$(PY) -m pytest -q -m fuzz tests/fuzz

# tests/faults (marked faults, left out of make test). PostgreSQL halves need COMMTEST_TEST_POSTGRES_URL;
# COMMTEST_FAULTS_KILLS (per database, default 52) and COMMTEST_FAULTS_SEED (default 2027) tune it.
faults: $(STAMP)
	$(PY) -m pytest -q -m faults tests/faults

demo: $(STAMP)
	$(VENV)/bin/commtest demo

# Each benchmark prints its figures last, on one line: RESULT name=value ... (docs/PERFORMANCE.md).
# PostgreSQL halves use COMMTEST_TEST_POSTGRES_URL's server (a database of their own: commtest_bench).
# wrk (apt-get install wrk) makes bench_ack's load cheaper than its Python client.
bench: $(STAMP)
	$(PY) bench/bench_dispatch.py
	@if [ -n "$$COMMTEST_TEST_POSTGRES_URL" ]; then $(PY) bench/bench_dispatch.py --database-url "$$COMMTEST_TEST_POSTGRES_URL"; fi
	$(PY) bench/bench_timers.py
	$(PY) bench/bench_timers.py --contact-points 7500
	$(PY) bench/bench_ack.py
	$(PY) bench/bench_pacing.py
	$(PY) bench/bench_monthly_report.py --reuse
	$(PY) bench/bench_idle.py

lint: $(STAMP)
	$(PY) -m ruff check commtest scheduler channels playbooks reports web tests

typecheck: $(STAMP)
	$(PY) -m mypy

# Extract every text for people from the code and templates and merge it into the .po files
# (commtest/locale/<lang>/LC_MESSAGES/<domain>.po); then translate the new empty entries.
catalogues: $(STAMP)
	$(PY) scripts/catalogues.py

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache


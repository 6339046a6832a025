# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FLASK := FLASK_APP=wsgi.py $(VENV)/bin/flask
PYTEST_ARGS ?=
export PYTHONPATH := $(CURDIR)

.PHONY: run test test-fast bench translations lint clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt requirements.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

translations: $(VENV)/.runtime
	$(PY) scripts/i18n.py --compile >/dev/null

PORT ?= 5000
export PORT

## make run: the portal on http://127.0.0.1:$(PORT) (PORT=5001 make run) with SQLite, mail to
## instance/mail/, demo data. Links in emails follow PORT (config.py builds PUBLIC_BASE_URL from it).
## Card payments go to localstripe (a local Stripe fake, dev dependency) started on 127.0.0.1:8420.
run: $(VENV)/.dev translations
	mkdir -p instance
	$(PY) scripts/localstripe_dev.py start
	$(FLASK) db upgrade
	$(FLASK) demo seed
	@echo "Portal: http://127.0.0.1:$(PORT)  (mail goes to instance/mail/*.eml)"
	$(FLASK) run --host 127.0.0.1 --port $(PORT)

## make test: the whole suite (SQLite by default; TEST_DATABASE_URL=postgresql+psycopg://… for PostgreSQL).
test: $(VENV)/.dev translations
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

test-fast: $(VENV)/.dev translations
	$(PY) -m pytest -n 2 -m "not e2e" $(PYTEST_ARGS)

## make bench: every registered page against its bare baselines at 1k patients on PostgreSQL, -w 2 and -w 4,
## one short run each (~5 min; bench/README.md). Full runs: python bench/load.py --size 10k (or 100k) --c64.
BENCH_ARGS ?= --size 1k --quick
bench: $(VENV)/.dev translations
	$(PY) bench/load.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache

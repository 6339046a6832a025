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
	$(VENV)/bin/pybabel compile -d portal/translations >/dev/null

## make run: the portal on http://127.0.0.1:5000 with SQLite, mail to instance/mail/, demo data.
run: $(VENV)/.runtime translations
	mkdir -p instance
	$(FLASK) db upgrade
	$(FLASK) demo seed
	@echo "Portal: http://127.0.0.1:5000  (mail goes to instance/mail/*.eml)"
	$(FLASK) run --host 127.0.0.1 --port 5000

## make test: the whole suite (SQLite by default; TEST_DATABASE_URL=postgresql+psycopg://… for PostgreSQL).
test: $(VENV)/.dev translations
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

test-fast: $(VENV)/.dev translations
	$(PY) -m pytest -n 2 -m "not e2e" $(PYTEST_ARGS)

bench: $(VENV)/.dev translations
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache

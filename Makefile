# The two commands: `make run` serves the app, `make test` passes every test.
# Both set up everything they need on a fresh machine.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test test-sqlite test-postgres lint format bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	bin/run

# The whole suite on SQLite, then again on a throwaway PostgreSQL 15; the exit code is
# non-zero when either run fails, and the database is stopped whatever happens.
test: $(VENV)/.installed
	bin/install-test-deps
	@status=0; \
	echo "=== pytest on SQLite ==="; \
	env -u DATABASE_URL $(PY) -m pytest || status=1; \
	echo "=== pytest on PostgreSQL ==="; \
	bin/with-postgres $(PY) -m pytest || status=1; \
	exit $$status

test-sqlite: $(VENV)/.installed
	env -u DATABASE_URL $(PY) -m pytest

test-postgres: $(VENV)/.installed
	bin/with-postgres $(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-* .admin-password staticfiles .run sandbox-store.json*

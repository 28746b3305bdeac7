# Concord. Two commands matter: `make run` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
VENV_STAMP := .venv/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)

.PHONY: run test lint audit bootstrap venv clean screenshots

## run: PostgreSQL and Redis (its own under var/ when none runs here), then web + worker +
## scheduler + sandbox provider; Ctrl-C stops them all (scripts/run.py, docs/running.md)
run: venv
	@$(PY) scripts/run.py

## test: the whole suite on real PostgreSQL and Redis, plus ruff, import contracts and mypy;
## installs and starts what is missing first (scripts/bootstrap.sh, as .ci/run)
test: bootstrap venv
	.venv/bin/ruff check .
	.venv/bin/lint-imports
	.venv/bin/mypy
	$(PY) scripts/audit_requirements.py requirements.txt
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres} DJANGO_SETTINGS_MODULE=config.settings.test $(PY) manage.py makemigrations --check --dry-run
	@scripts/pytest.sh

lint: venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports
	.venv/bin/mypy

## audit: known vulnerabilities in the pinned runtime set (pip-audit); skipped, saying so,
## when the advisory service cannot be reached
audit: venv
	$(PY) scripts/audit_requirements.py requirements.txt

## screenshots: refresh docs/screenshots/ from the browser journeys
screenshots: bootstrap venv
	UPDATE_SCREENSHOTS=1 scripts/pytest.sh -m browser

## bootstrap: install missing Debian packages, start PostgreSQL and Redis for the suite
bootstrap:
	@scripts/bootstrap.sh

venv: $(VENV_STAMP)

## venv: the runtime pins (requirements.txt) and the development/test tools (requirements-dev.txt)
$(VENV_STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || { scripts/bootstrap.sh install python3-venv && { python3.11 -m venv .venv || python3 -m venv .venv; }; }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@rm -f .venv/.installed-*
	@touch $(VENV_STAMP)

## clean: the virtualenv and var/ (make run's own database and broker data too)
clean:
	rm -rf var .venv

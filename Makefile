# Concord. Two commands matter: `make run` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
VENV_STAMP := .venv/.installed-$(shell sha1sum requirements.txt | cut -c1-12)

.PHONY: run test lint services venv clean screenshots

## run: web + worker + scheduler + sandbox provider, Ctrl-C stops them all
run: venv
	@scripts/run.sh

## test: the whole suite on real PostgreSQL and Redis, plus ruff, import contracts and mypy
test: venv services
	.venv/bin/ruff check .
	.venv/bin/lint-imports
	.venv/bin/mypy
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres} DJANGO_SETTINGS_MODULE=config.settings.test $(PY) manage.py makemigrations --check --dry-run
	@scripts/pytest.sh

lint: venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports
	.venv/bin/mypy

## screenshots: refresh docs/screenshots/ from the browser journeys
screenshots: venv services
	UPDATE_SCREENSHOTS=1 scripts/pytest.sh -m browser

## services: start PostgreSQL and Redis if installed and not running
services:
	@scripts/services.sh

venv: $(VENV_STAMP)

$(VENV_STAMP): requirements.txt
	@test -x $(PY) || python3.11 -m venv .venv || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@rm -f .venv/.installed-*
	@touch $(VENV_STAMP)

clean:
	rm -rf var .venv

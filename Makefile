# The two commands a fresh clone needs: `make dev` runs djs, `make test` checks it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test lint install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,dev-servers,bench]"
	touch $(STAMP)

## `djs package` builds the Lambda zips offline from what this makes: a Python 3.12 build venv
## with chalice (Lambda's runtime follows the Python that packages) and a wheelhouse of the
## apps' requirements as manylinux x86_64 CPython 3.12 wheels. PACKAGE_PYTHON picks the
## interpreter (3.12 or newer; the wheelhouse is for its version).
PACKAGE_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12.*/bin/python3.12) python3.12)
PACKAGE_DIR    := .djs/package
PACKAGE_VENV   := $(PACKAGE_DIR)/venv/.installed
WHEELHOUSE     := $(PACKAGE_DIR)/wheelhouse/.filled
LAMBDA_REQS    := api_app/requirements.txt worker_app/requirements.txt

$(PACKAGE_VENV): $(STAMP)
	$(PACKAGE_PYTHON) -m venv $(PACKAGE_DIR)/venv
	$(PACKAGE_DIR)/venv/bin/pip install --quiet --upgrade pip
	$(PACKAGE_DIR)/venv/bin/pip install --quiet "chalice==$$($(BIN)/python -c 'import chalice; print(chalice.__version__)')"
	touch $@

$(WHEELHOUSE): $(PACKAGE_VENV) $(LAMBDA_REQS)
	$(PACKAGE_DIR)/venv/bin/pip download --quiet --only-binary=:all: \
		--platform manylinux2014_x86_64 --implementation cp \
		--python-version $$($(PACKAGE_DIR)/venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])') \
		-d $(PACKAGE_DIR)/wheelhouse $(addprefix -r ,$(LAMBDA_REQS))
	touch $@

install: $(STAMP) $(PACKAGE_VENV) $(WHEELHOUSE)

## Run the whole system: Postgres + Redis (embedded if none answer), migrations, API, runner.
## The API listens on PORT: `make dev PORT=8001`.
PORT ?= 8000
dev: $(STAMP)
	$(BIN)/djs dev --port $(PORT)

## Lint, type-check, check the layers (import-linter), and run every test against real
## PostgreSQL and Redis: the parallel suite first, then the serial one (the short chaos
## suite, the bench smoke test) alone.
test: lint $(PACKAGE_VENV) $(WHEELHOUSE)
	$(BIN)/pytest -n auto -m "not serial"
	$(BIN)/pytest -p no:xdist -m serial

## The chaos suite at full size (minutes); figures go to chaos-results/ (tests/chaos/README.md).
.PHONY: chaos
chaos: $(STAMP)
	DJS_CHAOS=full DJS_CHAOS_RESULTS=chaos-results $(BIN)/pytest tests/chaos -p no:xdist -s -q

## Run docker-compose.yml for real (minutes): its own dockerd, locally built base images,
## `up --build --wait --scale worker=3`, jobs through the API, then everything torn down
## (infra/compose-test/run.sh). Where no engine can run it says COMPOSE TEST SKIPPED and
## fails (exit 77), unless DJS_COMPOSE_SKIP_OK=1 (as .ci/run sets it).
.PHONY: compose-test
compose-test: $(STAMP)
	infra/compose-test/run.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy common api_app worker_app djs_cli
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .djs .pytest_cache .mypy_cache .ruff_cache *.egg-info

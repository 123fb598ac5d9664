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

install: $(STAMP)

## Run the whole system: Postgres + Redis (embedded if none answer), migrations, API, runner.
## The API listens on PORT: `make dev PORT=8001`.
PORT ?= 8000
dev: $(STAMP)
	$(BIN)/djs dev --port $(PORT)

## Lint, type-check, check the layers (import-linter), and run every test against real
## PostgreSQL and Redis: the parallel suite first, then the serial one (the short chaos
## suite, the bench smoke test) alone.
test: lint
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
